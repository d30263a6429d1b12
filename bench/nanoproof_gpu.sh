#!/bin/sh
# NanoProof on a GPU machine, in one run (about 2 minutes after the build):
#   1. test_gpt_engine: the KV-cache engine on CUDA against the CPU's full
#      forward (decode at every position, greedy generation);
#   2. bench_nanoproof on cuda: decode tokens/s with the KV cache at batch 1
#      and 64, Tyr next to the PyTorch twin in the same run (parity first),
#      for the default config (12 layers, 768 wide, vocab 50304) and tiny;
#   3. nanoproof --preset gpu, shortened (400 steps), then solve rates by
#      difficulty for sampling vs search at budgets 8 and 32.
# Usage, from the repository root: bench/nanoproof_gpu.sh OUTDIR [BUILD_DIR]
# (BUILD_DIR default build-gpu, configured and built here with CUDA when the
# programs are missing; PYTHON: the interpreter with PyTorch, default
# python3).  OUTDIR receives nanoproof_gpu.log (everything printed) and the
# run's eval.json, metrics.jsonl and loss.png; the weights and checkpoints
# (hundreds of MB for the default config) stay in a temporary directory.
set -eu
out=${1:?usage: bench/nanoproof_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -x "$build/nanoproof" ] || [ ! -x "$build/bench/bench_nanoproof" ] ||
  [ ! -x "$build/tests/test_gpt_engine" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build "$build" -j "$(nproc)" --target nanoproof bench_nanoproof test_gpt_engine >/dev/null
fi
{
  echo "== test_gpt_engine (CUDA engine vs CPU forward)"
  "$build/tests/test_gpt_engine" 2>&1 | grep -E "diff|OK|PASSED|FAILED|SKIPPED|ERROR" || true
  echo "== decode tok/s with the KV cache: default config, cuda"
  TYR_PYTHON=$py "$build/bench/bench_nanoproof" --config default --device cuda --batches 1,64 \
    --prompt 64 --new 128 --threads 8 --dir "$work/bench_default" || echo "(exit $?)"
  echo "== decode tok/s with the KV cache: tiny config, cuda"
  TYR_PYTHON=$py "$build/bench/bench_nanoproof" --config tiny --device cuda --batches 1,64 \
    --prompt 32 --new 64 --threads 8 --dir "$work/bench_tiny" || echo "(exit $?)"
  echo "== nanoproof --preset gpu, 400 steps, then sampling vs search"
  "$build/nanoproof" --preset gpu --iters 400 --decay-steps 400 --eval-interval 200 \
    --test-sequents 10 --budgets 8,32 --out-dir "$work/run" 2>&1 | grep -vE '^\[|live tensors' || true
  "$build/nanoproof" --prove "(a -> b) & (b -> c) |- a -> c" "$work/run" --device cuda --budget 64 || echo "(exit $?)"
  cp "$work/run/eval.json" "$work/run/metrics.jsonl" "$work/run/loss.png" "$out/" || true
} 2>&1 | tee "$out/nanoproof_gpu.log"
