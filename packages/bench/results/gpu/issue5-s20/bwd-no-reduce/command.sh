# v1: a bundle of 47b78c8 with bwdChunkParts returning reduceStep "" (no barriers, no sums of the
# dB / dC terms: wrong dB, dC; timing only), built from a scratch worktree; base: 47b78c8 itself.
source .gpu/enter.sh >/dev/null 2>&1
S=8x2048x512x16,4x2048x1536x16,1x16384x1024x16
for v in base v1 v1 base; do
  b=.gpu/webgpu-scan.mjs; [ $v = v1 ] && b=.gpu/v1/webgpu-scan.mjs
  node $b --lengths 4096 --scan-algo lookback --ssm $S --ssm-bwd-algo scratch --runs 5 --profile --out /tmp/x.json > /tmp/l.log 2>&1
  cat /tmp/l.log >> $OUT/$v.log
  echo "== $v"; grep -E "^selectiveScanGrad|ssm:bwdp" /tmp/l.log | awk '{print $1,$2,$3,$4,$9,$12,$13,$14}'
done
