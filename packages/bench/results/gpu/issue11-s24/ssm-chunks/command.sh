source .gpu/enter.sh
mkdir -p /tmp/o
S="--ssm 64x4096x512x16,256x1024x512x16,16x16384x512x16,8x2048x512x16,4x2048x1536x16 --lengths 4096 --scan-algo lookback --runs 7"
for i in 1 2; do
  timeout 200 node .gpu/old/webgpu-scan.mjs $S --ssm-fwd-threads 131072,32768,65536,262144 --out /tmp/o/scan-$i.json > /tmp/o/scan-$i.log 2>&1
  echo "scan $i rc $?"
done
cp .gpu/cmd3.sh /tmp/o/command.sh
tar czf $OUT/res.tgz -C /tmp/o .
