# Session 21, first GPU call: the polynomial exp (ssmTuning.polyExp / bwdPolyExp, variants :p<k>)
# against the builtin exp, and a timing-only build whose exp is a clamped FMA (noexp-*: what the
# scan costs without its exponentials). Outputs under $OUT.
source .gpu/enter.sh > $OUT/env.txt 2>&1
(which ncu nsys nvcc; ls -d /usr/local/cuda* /opt/nvidia 2>&1) >> $OUT/env.txt 2>&1
S=1x65536x1024x16,1x262144x256x16,8x2048x512x16,4x2048x1536x16
C="--lengths 4096 --scan-algo lookback --ssm $S --runs 5 --profile"
mkdir -p $OUT/j
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback,lookback:p1,lookback:p2,lookback:p4 --ssm-bwd-algo scratch --out $OUT/j/a.json > $OUT/a.log 2>&1
node .gpu/noexp-webgpu-scan.mjs $C --ssm-fwd-algo lookback --ssm-bwd-algo scratch --out $OUT/j/n.json > $OUT/n.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback:p4,lookback:p2,lookback:p1,lookback --ssm-bwd-algo scratch:p1 --out $OUT/j/b.json > $OUT/b.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback:p2 --ssm-bwd-algo scratch:p2 --out $OUT/j/c.json > $OUT/c.log 2>&1
node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo lookback:p1 --ssm-bwd-algo scratch:p4 --out $OUT/j/d.json > $OUT/d.log 2>&1
tar czf $OUT/json.tgz -C $OUT j && rm -r $OUT/j
