source .gpu/enter.sh >/dev/null 2>&1
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm 1x16384x1024x16,1x65536x1024x16,1x262144x256x16,1x61440x512x16 --ssm-fwd-threads 262144,524288,1048576,2097152 --ssm-bwd-algo scratch --runs 5 --out /tmp/w1.json > $OUT/threads-long.log 2>&1
node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm 8x2048x512x16,4x2048x1536x16 --ssm-fwd-threads 65536,131072,262144,524288 --ssm-bwd-algo scratch --runs 5 --out /tmp/w2.json > $OUT/threads-train.log 2>&1
grep -E "^selectiveScan " $OUT/threads-long.log $OUT/threads-train.log | awk '{print $1,$2,$3,$4,$9,$12,$14}'
