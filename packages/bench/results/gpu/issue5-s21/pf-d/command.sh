# Session 21, fourth GPU call: the forward's step blocking swept around the new default (8 steps
# prefetched), two orders (the third call's sweep printed nothing: cut by its timeout before the
# tables, which print at the end); then the issue run at the new default, packed in issue11.tgz.
source .gpu/enter.sh > $OUT/env.txt 2>&1
S=1x61440x512x16,1x65536x1024x16,8x2048x512x16,4x2048x1536x16
C="--lengths 4096 --scan-algo lookback --ssm $S --runs 5"
F=lookback:u4:bc,lookback:u8:pf,lookback:u16:pf,lookback:u12:pf
R=$(echo $F | tr ',' '\n' | tac | paste -sd,)
timeout 150 node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $F --ssm-bwd-algo scratch > $OUT/sweep-a.log 2>&1
timeout 150 node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $R --ssm-bwd-algo scratch > $OUT/sweep-b.log 2>&1
mkdir -p $OUT/i
OUT=$OUT/i timeout 330 bash packages/bench/gpu/run-issue11.sh > /dev/null 2>&1
tar czf $OUT/issue11.tgz -C $OUT i && rm -r $OUT/i
