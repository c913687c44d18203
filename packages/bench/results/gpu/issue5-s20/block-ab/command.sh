source .gpu/enter.sh >/dev/null 2>&1
S=1x16384x1024x16,1x65536x1024x16,1x262144x256x16,8x2048x512x16,4x2048x1536x16
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm $S --ssm-fwd-algo lookback:u1,lookback --ssm-bwd-algo scratch:u1,scratch,scratch:u8:bc --runs 5 --out /tmp/s1.json > $OUT/s1.log 2>&1
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm $S --ssm-fwd-algo lookback,lookback:u1 --ssm-bwd-algo scratch:u8:bc,scratch,scratch:u1 --runs 5 --out /tmp/s2.json > $OUT/s2.log 2>&1
grep -E "^selectiveScan" $OUT/s1.log $OUT/s2.log | awk '{print $1,$2,$3,$4,$6,$8,$9,$13}'
TT="--backend webgpu --preset small --kinds memmamba,mamba --batch 8 --seq 2048 --steps 6 --warmup 3 --cap-s 40"
for r in 1 2; do
  MEMMAMBA_SSM_STEP_BLOCK=1 timeout 70 node .gpu/train-throughput.mjs $TT --out $OUT/tt-u1-$r.json > /tmp/tt.log 2>&1; cat /tmp/tt.log >> $OUT/tt-all.txt; grep -E "^(memmamba|mamba) " /tmp/tt.log | sed "s/^/u1 $r /"
  timeout 70 node .gpu/train-throughput.mjs $TT --out $OUT/tt-u4-$r.json > /tmp/tt.log 2>&1; cat /tmp/tt.log >> $OUT/tt-all.txt; grep -E "^(memmamba|mamba) " /tmp/tt.log | sed "s/^/u4 $r /"
done
for r in 1 2; do
  MEMMAMBA_SSM_STEP_BLOCK=1 timeout 60 node .gpu/long-context.mjs --kinds memmamba,mamba --lengths 60K --chunks 65536 --runs 7 > /tmp/lc.log 2>&1; cat /tmp/lc.log >> $OUT/lc-all.txt; grep -E "^(memmamba|mamba) " /tmp/lc.log | sed "s/^/u1 $r /"
  timeout 60 node .gpu/long-context.mjs --kinds memmamba,mamba --lengths 60K --chunks 65536 --runs 7 > /tmp/lc.log 2>&1; cat /tmp/lc.log >> $OUT/lc-all.txt; grep -E "^(memmamba|mamba) " /tmp/lc.log | sed "s/^/u4 $r /"
done
