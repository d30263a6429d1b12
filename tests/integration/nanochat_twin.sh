#!/bin/sh
# The nanochat GPT against its PyTorch twin (bench/bench_nanochat --dump and
# bench/torch_nanochat.py check): from Tyr's initial weights on one batch,
# logits, loss and every gradient agree to 1e-9 relative in f64, with every
# feature on (windows and document masks included) and with each feature
# alone; then four training steps of the debug preset (Muon with Polar
# Express + Adam, as bench_nanochat --speed sets them up) on GPT-2 tokens of
# Shakespeare from the same initial weights: the losses agree to 1e-3 (f32;
# Adam's first steps move each weight by about lr * sign(g), so gradients
# that are zero up to rounding spread f32 differences over the steps).
# Skipped (exit 77) when PyTorch is not importable.
#   nanochat_twin.sh BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  echo "SKIP: PyTorch (python3-torch) is not importable"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$src"
for f in all none qk_norm rope_half value_embeds unet_skips block_lambdas smear_gate attn_gate \
  no_attn softcap windows docs; do
  mkdir -p "$tmp/$f"
  out=$("$build/bench/bench_nanochat" --dump "$tmp/$f" --feature "$f" --compare --threads 2 2>&1) ||
    { echo "$out"; echo "FAIL: feature $f"; exit 1; }
  echo "$f: $(echo "$out" | grep '^torch_nanochat check' | sed 's/.*largest/largest/')"
done
"$build/tyr_prepare" -q --tiktoken tests/data/tokenizer/gpt2.tiktoken.zst --pattern gpt2 --bos \
  --docs paragraph -o "$tmp/shk" data/tinyshakespeare.txt >/dev/null || { echo "FAIL: tyr_prepare"; exit 1; }
out=$("$build/bench/bench_nanochat" --speed --preset debug --device cpu --steps 2 --micro-batch 2 \
  --accum 2 --seq-len 48 --data "$tmp/shk/tinyshakespeare_train_000000.bin" --work-dir "$tmp/steps" \
  --tol 1e-3 --no-compile --threads 2 2>&1) || { echo "$out"; echo "FAIL: training steps"; exit 1; }
echo "$out" | grep '^losses'
echo "ok: Tyr and PyTorch agree on every feature and over four training steps"
