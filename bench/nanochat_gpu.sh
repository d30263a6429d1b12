#!/bin/sh
# TrainNanoChat's GPU run, in one go (from the repository root):
#   tests  test_cuda_sdpa_doc (document masks in the CUDA-core and
#          tensor-core attention kernels against the CPU, forward and
#          gradients), test_sdpa_doc (the CPU kernels against a dense
#          masked reference), test_cuda_ops (every CUDA kernel);
#   train  train_nanochat --preset d12 for $STEPS steps on Shakespeare in
#          GPT-2 tokens (made here by tyr_prepare; the GPU machine has no
#          network for scripts/make_corpus.sh): the log lines with tok/s and
#          MFU, and the loss;
#   bench  bench_nanochat --speed: d12 at $ACCUM x $MB x 1024 tokens per step
#          (gradient accumulation), Tyr then the PyTorch twin (torch.compile,
#          FlexAttention with block masks) in the same run, from the same
#          initial weights on the same batches of $CORPUS (a token shard;
#          default Shakespeare's): tok/s, MFU, peak memory, the losses of
#          both step by step.
# Usage: bench/nanochat_gpu.sh OUTDIR [BUILD_DIR]   (from the repository root;
# the build is scripts/gpu-suite.sh --build's, so TYR_DEPS works as there)
# Environment: STAGES (default "tests train bench"), STEPS (default 10),
# BENCH_STEPS (the bench's, default STEPS; 498 + 2 warm-up for the issue's
# 500-step comparison), CORPUS, MB (64) and ACCUM (8), PYTHON (the
# interpreter with PyTorch 2, default python3), TYR_CUDA_ARCHS (90).
# Writes OUTDIR/build.log, OUTDIR/test_cuda_ops.log, OUTDIR/d12.log, OUTDIR/d12/metrics.jsonl
# and OUTDIR/d12/loss.png; prints the rest.  Exit 0 when every stage passed.
set -u
out=${1:?usage: bench/nanochat_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
stages=${STAGES:-tests train bench}
steps=${STEPS:-10}
mb=${MB:-64}
accum=${ACCUM:-8}
mkdir -p "$out"
# configure and build with the GPU suite (it uses carried Debian packages,
# TYR_DEPS, when the machine lacks them), then the same environment here
if ! TYR_BUILD_DIR="$build" sh scripts/gpu-suite.sh --build >"$out/build.log" 2>&1; then
  tail -n 60 "$out/build.log"
  echo "nanochat_gpu: FAIL (build)"
  exit 1
fi
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
TYR_DEPS_BUILD=$build . scripts/deps-env.sh # the packages gpu-suite.sh unpacked, if any
if ! cmake --build "$build" -j "$(nproc)" --target test_cuda_sdpa_doc test_sdpa_doc test_cuda_ops \
  train_nanochat tyr_prepare bench_nanochat >>"$out/build.log" 2>&1; then
  tail -n 60 "$out/build.log"
  echo "nanochat_gpu: FAIL (build)"
  exit 1
fi
failed=""
case " $stages " in *" tests "*)
  echo "== test_cuda_sdpa_doc (document masks on the GPU against the CPU)"
  TYR_CUDA_TEST_VERBOSE=1 "$build/tests/test_cuda_sdpa_doc" || failed="$failed test_cuda_sdpa_doc"
  echo "== test_sdpa_doc (CPU against a dense masked reference)"
  "$build/tests/test_sdpa_doc" || failed="$failed test_sdpa_doc"
  echo "== test_cuda_ops"
  "$build/tests/test_cuda_ops" >"$out/test_cuda_ops.log" 2>&1 || failed="$failed test_cuda_ops"
  grep -E "sdpa|PASSED|FAILED|SKIPPED|ERROR" "$out/test_cuda_ops.log"
esac
case " $stages " in *" train "*)
  echo "== train_nanochat --preset d12, $steps steps"
  "$build/tyr_prepare" -q --tiktoken tests/data/tokenizer/gpt2.tiktoken.zst --pattern gpt2 --bos \
    --docs paragraph -o "$build/nanochat_shk" data/tinyshakespeare.txt >/dev/null
  # Shakespeare's val shard holds too few 1025-token windows for a batch of
  # 64: this smoke run validates on one batch of the train shard
  shk=$build/nanochat_shk/tinyshakespeare_train_000000.bin
  "$build/train_nanochat" --preset d12 --data "$shk" --val "$shk" --iterations "$steps" \
    --val-every "$steps" --val-tokens $((mb * 1024)) --save-every 0 --log-every 1 --micro-batch "$mb" \
    --batch-size $((mb * accum)) --batch-start $((mb * accum)) --checkpoint-dir "$out/d12" \
    --no-auto-resume >"$out/d12.log" 2>&1 || failed="$failed train"
  grep -v "^\[" "$out/d12.log"
  rm -f "$out/d12/latest" # 1.5 GB: not brought back
esac
case " $stages " in *" bench "*)
  bsteps=${BENCH_STEPS:-$steps}
  data=${CORPUS:-}
  if [ -z "$data" ]; then # Shakespeare's train shard, made by the train stage or here
    data=$build/nanochat_shk/tinyshakespeare_train_000000.bin
    [ -f "$data" ] || "$build/tyr_prepare" -q --tiktoken tests/data/tokenizer/gpt2.tiktoken.zst \
      --pattern gpt2 --bos --docs paragraph -o "$build/nanochat_shk" data/tinyshakespeare.txt >/dev/null
  fi
  echo "== bench_nanochat --speed: d12, $accum x $mb x 1024 tokens per step, $bsteps steps on $data"
  TYR_PYTHON=${PYTHON:-python3} "$build/bench/bench_nanochat" --speed --preset d12 --device cuda \
    --steps "$bsteps" --micro-batch "$mb" --accum "$accum" --seq-len 1024 --data "$data" \
    --work-dir "$build/nanochat_bench" || failed="$failed bench"
  rm -f "$build/nanochat_bench/init.safetensors"
  cp "$build/nanochat_bench/"*_losses.txt "$out/" 2>/dev/null
esac
[ -z "$failed" ] && echo "nanochat_gpu: PASS" || echo "nanochat_gpu: FAIL ($failed )"
[ -z "$failed" ]
