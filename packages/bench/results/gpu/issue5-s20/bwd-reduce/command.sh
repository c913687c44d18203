source .gpu/enter.sh >/dev/null 2>&1
S=8x2048x512x16,4x2048x1536x16,1x16384x1024x16
for v in old new new old; do
  b=.gpu/webgpu-scan.mjs; a="scratch,scratch:d2,scratch:d4"; [ $v = old ] && b=.gpu/old/webgpu-scan.mjs && a=scratch
  node $b --lengths 4096 --scan-algo lookback --ssm $S --ssm-bwd-algo $a --runs 5 --out /tmp/a.json > /tmp/l.log 2>&1; cat /tmp/l.log >> $OUT/$v.log
  echo "== $v"; grep -E "^selectiveScanGrad" /tmp/l.log | awk '{print $2,$3,$4,$9,$13}'
done
TT="--backend webgpu --preset small --kinds memmamba,mamba --batch 8 --seq 2048 --steps 6 --warmup 3 --cap-s 40"
for d in 1 2; do
  timeout 70 node .gpu/train-throughput.mjs $TT --ssm-bwd-reduce-steps $d --out $OUT/tt-d$d.json > /tmp/tt.log 2>&1; cat /tmp/tt.log >> $OUT/tt-all.txt; grep -E "^(memmamba|mamba) " /tmp/tt.log | sed "s/^/d$d /"
done
