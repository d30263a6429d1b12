#!/bin/sh
# The diffusion LM against its PyTorch twin (bench/torch_diffusion.py) on the
# tiny config: from Tyr's initial weights and Tyr's batches, 10 AdamW steps
# give the same losses, and at the trained weights the logits, the loss and
# every parameter's gradient agree.  Skips (77) when PyTorch is missing.
set -eu
build=$1 src=$2
py=""
for p in ${TYR_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then py=$p; break; fi
done
[ -n "$py" ] || { echo "SKIP: PyTorch is not importable (Debian package python3-torch)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=2 "$build/bench/bench_diffusion" --dump "$tmp" --config tiny --batch 4 --steps 10
cd "$src"
"$py" bench/torch_diffusion.py check "$tmp"
