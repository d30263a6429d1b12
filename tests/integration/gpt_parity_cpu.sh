#!/bin/sh
# gpt_parity on the CPU: a tiny tyr_gpt (2 layers, 64 wide, GPT-2's vocab)
# and its PyTorch twin train 20 steps from the same initial weights on the
# same GPT-2 tokens of tinyshakespeare; step-1 gradients within 1e-4, the
# step-1 loss within 1e-5 and the loss curves within 0.02 (bench/gpt_parity.c).
# Skipped (77) without PyTorch in /usr/bin/python3 (Debian's python3-torch).
# The GPT-2 124M parity in every precision mode runs on a GPU: scripts/gpu-suite.sh.
set -eu
build=$1 src=$2
py=/usr/bin/python3
if ! $py -c 'import torch' >/dev/null 2>&1; then
  echo "skipped: PyTorch is not importable from $py"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/tyr_prepare" -q --tiktoken "$src/tests/data/tokenizer/gpt2.tiktoken.zst" --pattern gpt2 \
  -o "$tmp/tok" "$src/data/tinyshakespeare.txt" >/dev/null
cd "$src"
OMP_NUM_THREADS=2 "$build/bench/gpt_parity" --device cpu --preset tiny --batch 2 --steps 20 \
  --tokens "$tmp/tok/tinyshakespeare_train_000000.bin" --out "$tmp/out" --python $py | tee "$tmp/log"
grep -q "^gpt_parity: PASS" "$tmp/log"
# the GPU suite's judgement over seeds (bench/gpt_parity_seeds.py): this run's
# f32 curves pass it; a run whose PyTorch side left no curve fails it
$py bench/gpt_parity_seeds.py "$tmp/out" | tee "$tmp/seeds"
grep -q "^f32 .* 1 " "$tmp/seeds" && grep -q "^gpt_parity_seeds: PASS" "$tmp/seeds"
mkdir "$tmp/cut"
cp "$tmp/out/losses_f32.txt" "$tmp/cut/"
if $py bench/gpt_parity_seeds.py "$tmp/cut" >"$tmp/seeds" 2>&1; then
  echo "gpt_parity_seeds passed a run without PyTorch's curve"; exit 1
fi
grep -q "torch_losses_fp32.txt is missing" "$tmp/seeds"
