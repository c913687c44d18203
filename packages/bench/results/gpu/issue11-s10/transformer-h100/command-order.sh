#!/bin/bash
# s10h: the Transformer baseline's blocked attention, ascending blocks (b16a368) vs descending (new), each in a fresh process, twice
cd "$(dirname "$0")/.."
source .gpu/enter.sh >/dev/null
R=/tmp/h; mkdir -p $R
for i in 1 2; do for v in old new; do
  S=.gpu/scaling.mjs; [ $v = new ] && S=.gpu/scaling-new.mjs
  echo "== $v $i"
  timeout 100 node $S --backend webgpu --preset small --kinds transformer --modes forward --lengths 4K,16K,60K \
    --parallel-max 4K --transformer-max 60K --runs 3 --warmup 1 --cap-s 20 --out $R/tr-$v-$i.json 2>&1 | grep -E "^transformer "
done; done
tar czf $OUT/s10h.tgz -C /tmp h
