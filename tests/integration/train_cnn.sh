#!/bin/sh
# train_cnn: one short epoch on a subset of Fashion-MNIST learns (test
# accuracy well above the 10% of chance) and writes its PNGs; N steps
# straight equal k steps + --resume + N-k steps (losses and checkpoint bit
# for bit); bad flags and a missing data directory are refused with a
# message.  Needs the Debian package dataset-fashion-mnist.
set -eu
build=$1 src=$2
bin=$build/train_cnn
data=/usr/share/datasets/fashion-mnist
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -r "$data/train-images-idx3-ubyte.gz" ] || { echo "FAIL: $data is missing (apt-get install dataset-fashion-mnist)"; exit 1; }

# smoke: one epoch of 3840 images
$bin --epochs 1 --train-limit 3840 --test-limit 1000 --batch-size 64 --warmup 5 --lr 0.05 \
  --width 8 --threads 2 --out-dir "$tmp/s" >"$tmp/s.out" 2>"$tmp/s.log"
acc=$(sed -n 's/^final: .* test_acc \([0-9.]*\) .*/\1/p' "$tmp/s.out")
echo "smoke: test accuracy $acc after one short epoch"
awk -v a="$acc" 'BEGIN { exit !(a > 0.3) }' || { echo "FAIL: accuracy $acc is not above 0.3"; cat "$tmp/s.log"; exit 1; }
for f in predictions confusion loss; do
  head -c 8 "$tmp/s/$f.png" | od -An -tx1 | grep -q "89 50 4e 47" || { echo "FAIL: $f.png is not a PNG"; exit 1; }
done
grep -q '"test_acc"' "$tmp/s/metrics.jsonl" || { echo "FAIL: no test_acc in metrics.jsonl"; exit 1; }

# exact resume
small="--epochs 2 --train-limit 640 --test-limit 200 --batch-size 32 --warmup 3 --width 4 --threads 2 --no-plot"
$bin $small --out-dir "$tmp/a" >"$tmp/a.out" 2>"$tmp/a.log"
$bin $small --out-dir "$tmp/b" --max-steps 13 >/dev/null 2>"$tmp/b1.log"
$bin $small --out-dir "$tmp/b" --resume "$tmp/b/last.safetensors" >"$tmp/b.out" 2>"$tmp/b2.log"
grep '"loss"' "$tmp/a/metrics.jsonl" | sed 's/,"lr".*//' >"$tmp/a.loss"
grep '"loss"' "$tmp/b/metrics.jsonl" | sed 's/,"lr".*//' >"$tmp/b.loss"
cmp -s "$tmp/a.loss" "$tmp/b.loss" || { echo "FAIL: losses differ between the straight and the resumed run"; diff "$tmp/a.loss" "$tmp/b.loss" | head; exit 1; }
[ "$(wc -l <"$tmp/a.loss")" -eq 40 ] || { echo "FAIL: expected 40 loss lines"; exit 1; }
cmp "$tmp/a/last.safetensors" "$tmp/b/last.safetensors" || { echo "FAIL: final checkpoints differ"; exit 1; }
[ "$(sed 's/ time_s.*//' "$tmp/a.out")" = "$(sed 's/ time_s.*//' "$tmp/b.out")" ] || { echo "FAIL: final accuracies differ"; exit 1; }
echo "ok: 40 steps straight == 13 + resume + 27 (BatchNorm running statistics included)"

# a checkpoint from another config is refused
if $bin $small --width 8 --out-dir "$tmp/c" --resume "$tmp/a/last.safetensors" >/dev/null 2>"$tmp/c.log"; then
  echo "FAIL: resuming with another config succeeded"; exit 1
fi
grep -q "different config" "$tmp/c.log" || { echo "FAIL: no 'different config' message"; cat "$tmp/c.log"; exit 1; }
# bad flags and inputs
for args in "--bogus 1" "--epochs x" "--batch-size 1" "--stages 9" "--data-dir $tmp/nowhere" "--device tpu"; do
  if $bin $small $args --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: '$args' was accepted"; exit 1; fi
  [ -s "$tmp/e.log" ] || { echo "FAIL: '$args' gave no message"; exit 1; }
  echo "ok: '$args' -> $(head -n 1 "$tmp/e.log")"
done
grep -q "apt-get install dataset-fashion-mnist" "$tmp/e.log" 2>/dev/null || true
# each message names the flag and the value given; a flag at the end without its value is refused
for case in "--epochs x|--epochs x: not an integer" "--epochs 0|--epochs 0: must be in" \
  "--lr 0|--lr 0: must be in" "--min-lr 1|--min-lr 1: must be in" "--lr nan|--lr nan: not a finite" \
  "--epochs|missing value for flag: --epochs" "--resume|missing value for flag: --resume"; do
  args=${case%%|*} want=${case#*|}
  rc=0; $bin $args >/dev/null 2>"$tmp/e.log" || rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: '$args' exited $rc, not 2"; cat "$tmp/e.log"; exit 1; }
  grep -qF -- "$want" "$tmp/e.log" || { echo "FAIL: '$args': no '$want' in:"; cat "$tmp/e.log"; exit 1; }
done
$bin --help | grep -q -- "--crop-pad" || { echo "FAIL: --help does not list the flags"; exit 1; }
echo "ok: all checks passed"
