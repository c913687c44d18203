# Session 21: the backward with its segment-start states in scratch (bwdAlgo "ckpt", S steps a
# segment) against the scratch kernel (every state through scratch), one variant a process.
source .gpu/enter.sh > $OUT/env.txt 2>&1
S=1x65536x1024x16,1x262144x256x16,8x2048x512x16,4x2048x1536x16
C="--lengths 4096 --scan-algo lookback --ssm $S --ssm-fwd-algo lookback --runs 5 --profile"
for v in scratch ckpt:s1 ckpt:s2 ckpt:s4 ckpt:s8 ckpt:s4:t64 scratch; do
  timeout 70 node .gpu/webgpu-scan.mjs $C --ssm-bwd-algo $v > /tmp/b.log 2>&1
  cat /tmp/b.log >> $OUT/all.log; grep -E "^selectiveScanGrad +[0-9]" /tmp/b.log >> $OUT/rows.txt
done
