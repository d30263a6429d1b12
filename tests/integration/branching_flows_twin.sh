#!/bin/sh
# The Branching Flows transformer against its PyTorch twin
# (bench/bench_branching_flows and bench/torch_branching_flows.py): from the
# same initial weights and packed batches of the mixed task (points and
# tokens: every part of the model), the loss and every gradient at the start
# agree (gradients to 1e-3 of the largest entry) and 6 AdamW steps of losses
# to 1e-2 (the other tasks: bench_branching_flows --task continuous|discrete).
# Skipped (successfully) when PyTorch is not importable.
set -eu
build=$1 src=$2
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  echo "skipped: PyTorch (python3-torch) is not importable"; exit 0
fi
cd "$src"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for task in mixed; do
  out=$("$build/bench/bench_branching_flows" --task $task --batch 4 --steps 6 --threads 1 --dir "$tmp")
  echo "$out"
  echo "$out" | grep -q '^check: ok' || { echo "FAIL: $task: the twin disagrees"; exit 1; }
done
