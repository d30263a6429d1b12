#!/bin/sh
# CUDA attention kernels on a GPU, in one go (from the repository root):
# cuDNN's fused attention (the default where it applies, docs/cuda.md)
# against Tyr's tensor-core kernel and PyTorch's backends.
#   tests  test_cuda_ops (every CUDA kernel; test_sdpa_cudnn holds cuDNN's
#          forward and backward to the f64 CPU reference, pairs each with
#          the tensor-core kernel's other direction and checks that the
#          backward repeats its bits), with TYR_CUDA_ATTN_VERBOSE=1 so that
#          any shape cuDNN declines is named;
#   attn   bench_attention_cuda --only gpt2 (tensor-core, CUDA-core and
#          cuDNN kernels at GPT-2 124M's shape), then PyTorch's backends at
#          the same shape (bench/torch_sdpa.py);
#   gpt2   bench_gpt2_cuda --only gpt2_124m --mode bf16 --attention both:
#          Tyr's step with the default (cuDNN) and the tensor-core kernel
#          ("+tc") and PyTorch's (eager, torch.compile) in one run, batch
#          $BATCH;
#   parity gpt_parity --modes bf16 with TYR_CUDA_ATTN=cudnn, $PARITY_STEPS
#          steps: step-1 gradients and losses against PyTorch's bf16 autocast.
# Usage: bench/attention_gpu.sh OUTDIR [BUILD_DIR]   (the build is
# scripts/gpu-suite.sh --build's; TYR_DEPS works as there)
# Environment: STAGES (default "tests attn gpt2 parity"), BATCH (16),
# PARITY_STEPS (20), PYTHON (the interpreter with PyTorch 2, default python3).
# Writes OUTDIR/*.log; prints the figures.  Exit 0 when every stage ran and
# the tests and parity passed.
set -u
out=${1:?usage: bench/attention_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
stages=${STAGES:-tests attn gpt2 parity}
batch=${BATCH:-16}
psteps=${PARITY_STEPS:-20}
py=${PYTHON:-python3}
mkdir -p "$out" || exit 1
status=0
has() { case " $stages " in *" $1 "*) return 0 ;; esac; return 1; }
say() { printf 'attention_gpu: %s\n' "$*"; }

# configure and build with the GPU suite (it uses carried Debian packages,
# TYR_DEPS, when the machine lacks them), then the same environment here
say "building $build (scripts/gpu-suite.sh --build)"
TYR_BUILD_DIR=$build TYR_BUILD_TARGETS="test_cuda_ops bench_attention_cuda bench_gpt2_cuda gpt_parity tyr_prepare" \
  sh scripts/gpu-suite.sh --build >"$out/build.log" 2>&1 || { tail -n 30 "$out/build.log"; exit 1; }
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
TYR_DEPS_BUILD=$build . scripts/deps-env.sh # the packages gpu-suite.sh unpacked, if any

if has tests; then
  say "test_cuda_ops"
  TYR_CUDA_ATTN_VERBOSE=1 TYR_CUDA_TEST_VERBOSE=1 "$build/tests/test_cuda_ops" >"$out/test_cuda_ops.log" 2>&1 || status=1
  grep -E "sdpa|declined|PASSED|FAILED" "$out/test_cuda_ops.log" | tail -n 30
fi
if has attn; then
  say "bench_attention_cuda --only gpt2"
  TYR_CUDA_ATTN_VERBOSE=1 "$build/bench/bench_attention_cuda" --only gpt2 >"$out/attention.log" 2>&1 ||
    status=1
  cat "$out/attention.log"
  say "PyTorch's backends (bench/torch_sdpa.py)"
  "$py" bench/torch_sdpa.py >"$out/torch_sdpa.log" 2>&1 || status=1
  cat "$out/torch_sdpa.log"
fi
if has gpt2; then
  say "bench_gpt2_cuda --only gpt2_124m --mode bf16 --attention both --batch $batch"
  TYR_CUDA_ATTN_VERBOSE=1 "$build/bench/bench_gpt2_cuda" --only gpt2_124m --mode bf16 --attention both \
    --batch "$batch" >"$out/gpt2.log" 2>&1 || status=1
  cat "$out/gpt2.log"
fi
if has parity; then
  say "gpt_parity bf16, TYR_CUDA_ATTN=cudnn, $psteps steps"
  "$build/tyr_prepare" -q --tiktoken tests/data/tokenizer/gpt2.tiktoken.zst --pattern gpt2 \
    -o "$out/tokens" data/tinyshakespeare.txt >"$out/prepare.log" 2>&1 || status=1
  TYR_CUDA_ATTN=cudnn TYR_CUDA_ATTN_VERBOSE=1 "$build/bench/gpt_parity" --device cuda --batch 8 \
    --steps "$psteps" --seed 1 --modes bf16 --tokens "$out/tokens/tinyshakespeare_train_000000.bin" \
    --out "$out/parity" >"$out/parity.log" 2>&1
  tail -n 8 "$out/parity.log"
  grep -q "^gpt_parity: PASS" "$out/parity.log" || status=1
fi
say "$([ $status = 0 ] && echo done || echo 'done, with failures') (logs in $out)"
exit $status
