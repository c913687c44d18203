source .gpu/enter.sh
mkdir -p /tmp/o6
for i in 1 2 3 4; do
  if [ $((i % 2)) = 1 ]; then m=off,on; else m=on,off; fi
  timeout 120 node .gpu/decode.mjs --backend webgpu --batch 1,8 --steps 256 --warmup 64 --step-cache $m --out /tmp/o6/decode-$i.json > /tmp/o6/decode-$i.log 2>&1
  echo "run $i ($m) rc $?"
  grep -E "^(memmamba|mamba) " /tmp/o6/decode-$i.log
done
cp .gpu/cmd6.sh /tmp/o6/command.sh
tar czf $OUT/res.tgz -C /tmp/o6 .
