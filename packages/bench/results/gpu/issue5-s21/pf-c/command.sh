# Session 21, third GPU call: the forward's step blocking swept around the new default (8 steps
# prefetched), two orders; then whole programs with the new default and with
# MEMMAMBA_SSM_STEP_BLOCK=4bc (session 20's default), alternated twice. Outputs under $OUT.
source .gpu/enter.sh > $OUT/env.txt 2>&1
S=1x4096x1024x16,1x61440x512x16,1x65536x1024x16,1x262144x256x16,8x2048x512x16,4x2048x1536x16
C="--lengths 4096 --scan-algo lookback --ssm $S --runs 5"
F=lookback:u4:bc,lookback:u8:pf,lookback:u16:pf,lookback:u12:pf,lookback:u6:pf
R=$(echo $F | tr ',' '\n' | tac | paste -sd,)
timeout 100 node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $F --ssm-bwd-algo scratch > $OUT/sweep-a.log 2>&1
timeout 100 node .gpu/webgpu-scan.mjs $C --ssm-fwd-algo $R --ssm-bwd-algo scratch > $OUT/sweep-b.log 2>&1
TT="--backend webgpu --preset small --kinds memmamba,mamba --batch 8 --seq 2048 --steps 10 --warmup 3 --pipelined 20"
for r in 1 2; do
  for v in default 4bc; do
    E=""; [ $v = 4bc ] && E=4bc
    MEMMAMBA_SSM_STEP_BLOCK=$E timeout 80 node .gpu/train-throughput.mjs $TT --out /tmp/tt.json > /tmp/tt.log 2>&1; cat /tmp/tt.log >> $OUT/ab-all.txt; grep -E "^(memmamba|mamba) " /tmp/tt.log | sed "s/^/tt $v $r /" >> $OUT/ab.txt
    MEMMAMBA_SSM_STEP_BLOCK=$E timeout 60 node .gpu/long-context.mjs --kinds memmamba,mamba --lengths 60K --chunks 65536 --runs 7 --out /tmp/lc.json > /tmp/lc.log 2>&1; cat /tmp/lc.log >> $OUT/ab-all.txt; grep -E "^(memmamba|mamba) +60K +65536" /tmp/lc.log | sed "s/^/lc $v $r /" >> $OUT/ab.txt
  done
done
