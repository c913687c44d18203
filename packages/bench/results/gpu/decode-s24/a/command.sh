source .gpu/enter.sh
mkdir -p /tmp/o5
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > /tmp/o5/gpu.txt
for i in 1 2 3; do
  timeout 150 node .gpu/decode.mjs --backend webgpu --batch 1,8 --steps 128 --warmup 32 --step-cache on,off --out /tmp/o5/decode-$i.json > /tmp/o5/decode-$i.log 2>&1
  echo "run $i rc $?"
  tail -7 /tmp/o5/decode-$i.log
done
cp .gpu/cmd5.sh /tmp/o5/command.sh
tar czf $OUT/res.tgz -C /tmp/o5 .
