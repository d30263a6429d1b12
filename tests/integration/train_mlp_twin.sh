#!/bin/sh
# train_mlp's model against its PyTorch twin (bench/bench_train_mlp and
# bench/torch_mlp.py): from the same initial weights and batches, the first
# loss and every gradient norm agree to 1e-5 relative and 20 AdamW steps of
# losses to 1e-4.  Skipped (successfully) when PyTorch is not importable.
set -eu
build=$1 src=$2
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  echo "skipped: PyTorch (python3-torch) is not importable"; exit 0
fi
data=${TYR_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
  echo "skipped: no Fashion-MNIST in $data"; exit 0
fi
cd "$src"
out=$("$build/bench/bench_train_mlp" --data "$data" --steps 20 --hidden 64 --threads 1)
echo "$out"
echo "$out" | awk '
  /^first loss:/ { t = $4; sub(",", "", t); p = $6; d = t - p; if (d < 0) d = -d; if (d > 1e-5 * p) bad = bad "first loss; " }
  /^grad norm/ { r = $NF; sub("\\)", "", r); if (r + 0 > 1e-5) bad = bad $3 "; " }
  /^losses:/ { if ($(NF - 2) + 0 > 1e-4) bad = bad "losses; " }
  END { if (bad != "") { print "FAIL: " bad; exit 1 } }'
echo "ok: Tyr and PyTorch agree"
