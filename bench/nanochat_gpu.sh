#!/bin/sh
# TrainNanoChat's GPU checks, in one run: builds the CUDA targets, then
#   1. test_cuda_sdpa_doc: document masking (tyr_sdpa_opts.doc_ids) in the
#      CUDA-core and tensor-core attention kernels against the CPU, forward
#      and gradients, with causal, sliding windows, GQA, T != S, tyr_sdpa_qkv;
#   2. test_sdpa_doc: the CPU kernels against a dense masked reference;
#   3. test_cuda_ops: every CUDA kernel against the CPU (attention included).
# Usage, from the repository root: bench/nanochat_gpu.sh OUTDIR [BUILD_DIR]
# (default build-gpu, configured here with CUDA for sm_90).  Writes
# OUTDIR/build.log and OUTDIR/test_cuda_ops.log and prints the tests' output; exit status 0 when all pass.
set -u
out=${1:?usage: bench/nanochat_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
mkdir -p "$out"
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${TYR_CUDA_ARCHS:-90}" &&
  cmake --build "$build" -j "$(nproc)" --target test_cuda_sdpa_doc test_sdpa_doc test_cuda_ops; } \
  >"$out/build.log" 2>&1; then
  tail -n 60 "$out/build.log"
  echo "nanochat_gpu: FAIL (build)"
  exit 1
fi
status=0
echo "== test_cuda_sdpa_doc (document masks on the GPU against the CPU)"
TYR_CUDA_TEST_VERBOSE=1 "$build/tests/test_cuda_sdpa_doc" || status=1
echo "== test_sdpa_doc (CPU against a dense masked reference)"
"$build/tests/test_sdpa_doc" || status=1
echo "== test_cuda_ops"
"$build/tests/test_cuda_ops" >"$out/test_cuda_ops.log" 2>&1 || status=1
grep -E "sdpa|PASSED|FAILED|SKIPPED|ERROR" "$out/test_cuda_ops.log"
[ $status = 0 ] && echo "nanochat_gpu: PASS" || echo "nanochat_gpu: FAIL"
exit $status
