#!/bin/sh
# train_mlp on the GPU: a short run with --device cuda starts from the same
# weights as the CPU run (Philox initialisation, same seed), so its first
# training loss matches the CPU's to ~1e-4 relative; it trains, evaluates,
# checkpoints and resumes exactly on the GPU too.  Without a GPU (or without
# the CUDA backend in this build) it prints "skipped: no GPU" and succeeds.
set -eu
build=$1
bin=$build/train_mlp
if [ -z "$(find "$build" -maxdepth 2 -name 'libtyr_cuda_kernels.a' 2>/dev/null)" ]; then
  echo "skipped: no GPU (this build has no CUDA backend)"; exit 0
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "skipped: no GPU"; exit 0
fi
data=${TYR_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
if [ ! -r "$data/train-images-idx3-ubyte.gz" ]; then
  echo "skipped: no Fashion-MNIST in $data (set TYR_FASHION_MNIST to a directory with its files)"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--data $data --train-limit 3000 --epochs 2 --hidden 64 --batch-size 100 --no-plot"
for dev in cpu cuda; do
  $bin $small --device $dev --out-dir "$tmp/$dev" >"$tmp/$dev.out" 2>"$tmp/$dev.log" ||
    { echo "FAIL: $dev run exited non-zero"; tail -n 20 "$tmp/$dev.log"; exit 1; }
done
first() { sed -n 's/^{"step":1,"epoch":1,"loss":\([0-9.]*\),.*/\1/p' "$1/metrics.jsonl"; }
a=$(first "$tmp/cpu") b=$(first "$tmp/cuda")
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * a) }' ||
  { echo "FAIL: first loss cpu $a, cuda $b"; exit 1; }
acc=$(sed -n 's/.*final test accuracy \([0-9.]*\)%.*/\1/p' "$tmp/cuda.out")
awk -v a="$acc" 'BEGIN { exit !(a > 70) }' || { echo "FAIL: cuda test accuracy '$acc'"; exit 1; }
$bin $small --device cuda --out-dir "$tmp/r" --max-steps 17 >/dev/null 2>&1
$bin $small --device cuda --out-dir "$tmp/r" --resume "$tmp/r/last.safetensors" >/dev/null 2>&1
cmp -s "$tmp/cuda/metrics.jsonl" "$tmp/r/metrics.jsonl" || { echo "FAIL: resumed cuda run differs"; exit 1; }
echo "ok: first loss cpu $a, cuda $b; cuda accuracy $acc%; cuda resume exact"
