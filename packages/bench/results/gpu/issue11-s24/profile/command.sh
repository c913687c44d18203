source .gpu/enter.sh
nvidia-smi --query-gpu=name --format=csv,noheader
C="--backend webgpu --preset small --kinds memmamba,mamba --modes forward --tokens 256K --chunk 131072 --runs 5 --warmup 1 --cap-s 8 --stream-total 0"
timeout 150 node .gpu/scaling.mjs $C --lengths 1K,4K,16K --parallel-max 4K --profile --out $OUT/par.json > $OUT/par.log 2>&1
timeout 150 node .gpu/scaling.mjs $C --lengths 1K,4K,16K --parallel-max 512 --profile --out $OUT/chk.json > $OUT/chk.log 2>&1
timeout 100 node .gpu/scaling.mjs $C --lengths 1K,4K,16K --parallel-max 4K --out $OUT/par2.json > $OUT/par2.log 2>&1
timeout 100 node .gpu/scaling.mjs $C --lengths 1K,4K,16K --parallel-max 512 --out $OUT/chk2.json > $OUT/chk2.log 2>&1
grep -h "µs\|us/tok\|forward" $OUT/par2.log $OUT/chk2.log | head -40
