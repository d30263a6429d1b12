#!/bin/sh
# FLUX.2 [klein] 4B on a GPU machine, in one run (under 150 s on an H200),
# with the build that `scripts/gpu-suite.sh --build` made (build-gpu; only
# the missing targets are built here, the build is never reconfigured):
#   1. test_flux2: the PyTorch twin's fixtures in f32 and bf16 on CUDA, the
#      Philox start noise equal to the CPU's; the tiny pipeline's image on
#      cuda equal to the CPU's (tests/integration/flux_demo_cuda.sh);
#   2. flux_demo --random-weights full, 1024x1024, 4 steps, bf16: per-stage
#      seconds and peak GPU memory;
#   3. bench_flux2: Tyr's stages next to the PyTorch twin's (eager) in one
#      run (FLUX_COMPILE=1: torch.compile as well, which takes longer).
# Usage, from the repository root: bench/flux2_gpu.sh OUTDIR [BUILD_DIR]
# Writes OUTDIR/flux2_gpu.log (everything) and OUTDIR/flux_1024.png, and
# ends with one line: "flux2_gpu: PASS ..." or "flux2_gpu: FAIL ...".
set -u
out=${1:?usage: bench/flux2_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
log=$out/flux2_gpu.log
fails=""
{
  echo "== machine: $(nvidia-smi -L 2>/dev/null | head -n 1); commit $(git log --oneline -1 2>/dev/null)"
  for t in flux_demo bench/bench_flux2 tests/test_flux2; do
    if [ ! -x "$build/$t" ]; then
      echo "== building the missing targets"
      timeout 120 cmake --build "$build" -j "$(nproc)" --target flux_demo bench_flux2 test_flux2 2>&1 |
        grep -E "error|Error" | head -n 20
      break
    fi
  done
  echo "== test_flux2 (twin fixtures on CUDA in f32 and bf16)"
  if TYR_TEST_DATA=$PWD/tests/data timeout 60 "$build/tests/test_flux2" >"$out/t.txt" 2>&1; then :; else fails="$fails test_flux2"; fi
  grep -E "^#|PASSED|FAILED|SKIPPED|ERROR" "$out/t.txt"; rm -f "$out/t.txt"
  echo "== tiny pipeline: cpu vs cuda image"
  timeout 40 sh tests/integration/flux_demo_cuda.sh "$build" .
  rc=$?
  [ $rc = 0 ] || [ $rc = 77 ] || fails="$fails flux_demo_cuda"
  echo "== flux_demo --random-weights full 1024x1024, 4 steps, cuda"
  timeout 50 "$build/flux_demo" "a cat sitting on a windowsill, photorealistic" --random-weights full \
    --device cuda --width 1024 --height 1024 --steps 4 --out "$out/flux_1024.png" >"$out/d.txt" 2>&1 ||
    fails="$fails flux_demo_1024"
  grep -v "^\[=\|^\[ *>" "$out/d.txt" | tail -n 16; rm -f "$out/d.txt"
  echo "== bench_flux2: tyr vs the PyTorch twin (eager), 1024x1024, 4 steps"
  TYR_PYTHON=$py timeout 80 "$build/bench/bench_flux2" --device cuda --size 1024 --steps 4 ||
    fails="$fails bench_flux2"
  if [ -n "${FLUX_COMPILE:-}" ]; then
    echo "== bench_flux2: tyr vs the PyTorch twin (torch.compile)"
    TYR_PYTHON=$py timeout 300 "$build/bench/bench_flux2" --device cuda --size 1024 --steps 4 --compile ||
      fails="$fails bench_flux2_compile"
  fi
  if [ -z "$fails" ]; then echo "flux2_gpu: PASS (tests, 1024x1024 demo, benchmark)"
  else echo "flux2_gpu: FAIL:$fails"; fi
} >"$log" 2>&1
cat "$log"
