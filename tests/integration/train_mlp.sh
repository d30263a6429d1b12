#!/bin/sh
# train_mlp smoke test: a small run learns (test accuracy well above
# chance), writes metrics.jsonl and both plots; k steps + --resume gives the
# same losses, evaluations and final checkpoint as a straight run, bit for
# bit; bad flags, missing data and a checkpoint of other flags are refused
# with a message naming the flag or file.
set -eu
build=$1
bin=$build/train_mlp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the data: Debian's dataset-fashion-mnist, or a copy of its four files in $TYR_FASHION_MNIST
data=${TYR_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
  echo "FAIL: $data is missing (scripts/install-deps.sh installs dataset-fashion-mnist;"
  echo "      or set TYR_FASHION_MNIST to a directory with its four .gz files)"; exit 1
fi
"$bin" --help | grep -q -- "--batch-size" || { echo "FAIL: --help lists no flags"; exit 1; }
small="--data $data --train-limit 2000 --epochs 2 --hidden 32 --batch-size 64 --threads 2 --log-interval 10"
$bin $small --out-dir "$tmp/a" >"$tmp/a.out" 2>"$tmp/a.log"
$bin $small --out-dir "$tmp/b" --no-plot --max-steps 23 >/dev/null 2>"$tmp/b1.log"
grep -q "stopped after --max-steps 23" "$tmp/b1.log" || { echo "FAIL: no stop message"; cat "$tmp/b1.log"; exit 1; }
$bin $small --out-dir "$tmp/b" --resume "$tmp/b/last.safetensors" >/dev/null 2>"$tmp/b2.log"
grep -q "resumed from .* at step 23" "$tmp/b2.log" || { echo "FAIL: no resume message"; cat "$tmp/b2.log"; exit 1; }
if ! cmp -s "$tmp/a/metrics.jsonl" "$tmp/b/metrics.jsonl"; then
  echo "FAIL: metrics differ between the straight and the resumed run"
  diff "$tmp/a/metrics.jsonl" "$tmp/b/metrics.jsonl" | head; exit 1
fi
cmp "$tmp/a/last.safetensors" "$tmp/b/last.safetensors" || { echo "FAIL: final checkpoints differ"; exit 1; }
# 2000 images in batches of 64: 32 steps per epoch, 64 steps, 2 evaluations
[ "$(grep -c '"loss"' "$tmp/a/metrics.jsonl")" -eq 64 ] || { echo "FAIL: expected 64 step lines"; exit 1; }
[ "$(grep -c '"test_acc"' "$tmp/a/metrics.jsonl")" -eq 2 ] || { echo "FAIL: expected 2 evaluations"; exit 1; }
acc=$(sed -n 's/.*final test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/a.out")
awk -v a="$acc" 'BEGIN { exit !(a > 60) }' || { echo "FAIL: test accuracy '$acc' is not above 60%"; cat "$tmp/a.out"; exit 1; }
for f in loss.png accuracy.png; do
  head -c 8 "$tmp/a/$f" | od -An -c | grep -q "P   N   G" || { echo "FAIL: $f is not a PNG"; exit 1; }
done
echo "ok: 64 steps straight == 23 + resume + 41 (metrics and checkpoint bit for bit), accuracy $acc%"

# an --out-dir whose parents do not exist yet is made, as the default out/mlp is in a fresh checkout
$bin $small --no-plot --max-steps 1 --out-dir "$tmp/new/out/mlp" >/dev/null 2>"$tmp/n.log" || { echo "FAIL: nested --out-dir"; cat "$tmp/n.log"; exit 1; }
[ -s "$tmp/new/out/mlp/last.safetensors" ] || { echo "FAIL: no checkpoint in the nested --out-dir"; exit 1; }

# a checkpoint made with other flags is refused and left alone
cp "$tmp/a/last.safetensors" "$tmp/keep.safetensors"
if $bin $small --hidden 64 --out-dir "$tmp/a" --resume "$tmp/a/last.safetensors" >/dev/null 2>"$tmp/c.log"; then
  echo "FAIL: resuming with other flags succeeded"; exit 1
fi
grep -q "made with other flags" "$tmp/c.log" || { echo "FAIL: no message:"; cat "$tmp/c.log"; exit 1; }
cmp -s "$tmp/a/last.safetensors" "$tmp/keep.safetensors" || { echo "FAIL: checkpoint changed"; exit 1; }
# missing data: how to install it
if $bin --data "$tmp/nowhere" --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: missing data accepted"; exit 1; fi
grep -q "apt-get install dataset-fashion-mnist" "$tmp/e.log" || { echo "FAIL: no install hint:"; cat "$tmp/e.log"; exit 1; }
# a corrupt file names itself
mkdir -p "$tmp/bad"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  head -c 5000 "$data/$f" >"$tmp/bad/$f"
done
if $bin --data "$tmp/bad" --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: truncated data accepted"; exit 1; fi
grep -q "train-images-idx3-ubyte.gz: truncated" "$tmp/e.log" || { echo "FAIL: no file in message:"; cat "$tmp/e.log"; exit 1; }
# bad flags
for args in "--bogus 1" "--epochs x" "--epochs 0" "--batch-size -5" "--lr -1" "--device tpu" "--preset huge" "extra"; do
  if $bin $args --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: '$args' was accepted"; exit 1; fi
  [ -s "$tmp/e.log" ] || { echo "FAIL: '$args' gave no message"; exit 1; }
  echo "ok: '$args' -> $(head -n 1 "$tmp/e.log")"
done
echo "ok: all checks passed"
