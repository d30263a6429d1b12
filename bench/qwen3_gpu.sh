#!/bin/sh
# The Qwen3 text encoder (FLUX.2 [klein]) on a GPU machine, in one run of
# under 150 seconds, on an existing CUDA build (build-gpu, from
# scripts/gpu-suite.sh --build; only the three targets below are built here):
#   1. test_qwen3 (transformers' fixtures on the CPU and, in bf16, on CUDA; CUDA
#      against the CPU) and test_tokenizer_hf;
#   2. bench_qwen3 --device cuda: the 4B's shapes, 27 layers, one prompt padded
#      to 512, Tyr against transformers' Qwen3Model (bf16, SDPA) on the same
#      weights: both timings, peak memory and the features' largest difference.
# Writes OUTDIR/qwen3_gpu.log and ends with one line "qwen3_gpu: PASS ..." or
# "qwen3_gpu: FAIL (...)".
# Usage, from the repository root: bench/qwen3_gpu.sh OUTDIR [BUILD_DIR]
# Environment: PYTHON (the twin's interpreter, default python3), QWEN3_DEVICE
# (default cuda), QWEN3_BENCH_ARGS (extra bench_qwen3 flags, e.g. --compile).
set -u
out=${1:?usage: bench/qwen3_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
py=${PYTHON:-python3}
dev=${QWEN3_DEVICE:-cuda}
mkdir -p "$out"
log=$out/qwen3_gpu.log
: > "$log"
failed=""
cmake --build "$build" -j "$(nproc)" --target test_qwen3 test_tokenizer_hf bench_qwen3 \
  >> "$log" 2>&1 || failed="$failed build"
echo "== tests" >> "$log"
(cd "$build" && ctest -R "^(test_qwen3|test_tokenizer_hf)$" --output-on-failure) >> "$log" 2>&1 ||
  failed="$failed tests"
(cd "$build" && ./tests/test_qwen3) 2>&1 | grep -m1 -E "^\[ +(OK|SKIPPED|FAILED|ERROR) +\] test_cuda" >> "$log"
echo "== bench_qwen3 --device $dev" >> "$log"
dir=$(mktemp -d /tmp/tyr-bench-qwen3.XXXXXX)
# shellcheck disable=SC2086
TYR_PYTHON=$py "$build/bench/bench_qwen3" --device "$dev" --iters 20 --dir "$dir" \
  ${QWEN3_BENCH_ARGS:-} >> "$log" 2>&1 || failed="$failed bench"
rm -rf "$dir"
summary=$(grep -E "^(tyr:|torch:|parity:|ratio:)" "$log" | sed 's/ per prompt//' | tr '\n' ' ')
if [ -z "$failed" ]; then
  echo "qwen3_gpu: PASS $summary" | tee -a "$log"
else
  echo "qwen3_gpu: FAIL ($failed ) $summary" | tee -a "$log"
  exit 1
fi
