# Session 21, second GPU call: the step loops' loads one block ahead (ssmTuning.stepPrefetch,
# variants :pf), forward in two orders, the backward one variant a process. Outputs under $OUT.
source .gpu/enter.sh > $OUT/env.txt 2>&1
S=1x65536x1024x16,1x262144x256x16,8x2048x512x16,4x2048x1536x16
C="--lengths 4096 --scan-algo lookback --ssm $S --runs 5"
mkdir -p $OUT/j
F=lookback:u4:bc,lookback:u4:pf,lookback:u4:bc:pf,lookback:u8:pf,lookback:u2:pf,lookback:u1:pf,lookback:u8:bc:pf,chunked:u4:bc,chunked:u4:pf
R=$(echo $F | tr ',' '\n' | tac | paste -sd,)
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $F --ssm-bwd-algo scratch --out $OUT/j/a.json > $OUT/a.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $R --ssm-bwd-algo scratch:u1:pf --out $OUT/j/b.json > $OUT/b.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback --ssm-bwd-algo scratch:u4:pf --profile --out $OUT/j/c.json > $OUT/c.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback --ssm-bwd-algo scratch --profile --out $OUT/j/d.json > $OUT/d.log 2>&1
tar czf $OUT/json.tgz -C $OUT j && rm -r $OUT/j
