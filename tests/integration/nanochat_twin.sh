#!/bin/sh
# The nanochat GPT against its PyTorch twin (bench/bench_nanochat --dump and
# bench/torch_nanochat.py check): from Tyr's initial weights on one batch,
# logits, loss and every gradient agree to 1e-9 relative in f64, with every
# feature on (windows and document masks included) and with each feature
# alone.  Skipped (exit 77) when PyTorch is not importable.
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
echo "ok: Tyr and PyTorch agree on every feature"
