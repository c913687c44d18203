source .gpu/enter.sh >/dev/null 2>&1
S=8x2048x512x16,4x2048x1536x16,1x16384x1024x16,1x65536x1024x16
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm $S --ssm-bwd-algo scratch,scratch:d2,scratch:d4,scratch:d8 --runs 5 --out /tmp/a.json > $OUT/d-a.log 2>&1
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm $S --ssm-bwd-algo scratch:d8,scratch:d4,scratch:d2,scratch --runs 5 --out /tmp/b.json > $OUT/d-b.log 2>&1
grep -E "^selectiveScanGrad" $OUT/d-a.log $OUT/d-b.log | awk '{print $1,$2,$3,$4,$9,$10,$13,$14}'
TT="--backend webgpu --preset small --kinds memmamba,mamba --batch 8 --seq 2048 --steps 6 --warmup 3 --cap-s 40"
for r in 1 2; do for d in 1 2 4; do
  timeout 70 node .gpu/train-throughput.mjs $TT --ssm-bwd-reduce-steps $d --out $OUT/tt-d$d-$r.json > /tmp/tt.log 2>&1; cat /tmp/tt.log >> $OUT/tt-all.txt; grep -E "^(memmamba|mamba) " /tmp/tt.log | sed "s/^/d$d $r /"
done; done
