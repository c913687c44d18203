source .gpu/enter.sh
mkdir -p /tmp/o
S="--ssm 64x4096x512x16,256x1024x512x16,16x16384x512x16,8x2048x512x16,1x65536x1024x16 --lengths 4096 --scan-algo lookback --runs 7"
i=0
for v in old new new old; do
  i=$((i+1))
  timeout 100 node .gpu/$v/webgpu-scan.mjs $S --ssm-fwd-threads 0,32768,65536,262144 --out /tmp/o/scan-$i-$v.json > /tmp/o/scan-$i-$v.log 2>&1
  echo "scan $i $v rc $?"
done
C="--backend webgpu --preset small --kinds memmamba,mamba --modes forward --tokens 256K --chunk 131072 --parallel-max 4K --runs 5 --warmup 1 --cap-s 8 --stream-total 0 --lengths 1K,4K,16K,60K,256K"
for v in old new old new; do
  i=$((i+1))
  timeout 60 node .gpu/$v/scaling.mjs $C --out /tmp/o/tok-$i-$v.json > /tmp/o/tok-$i-$v.log 2>&1
  echo "tok $i $v rc $?"
done
cp .gpu/cmd2.sh /tmp/o/command.sh
tar czf $OUT/res.tgz -C /tmp/o .
