#!/bin/sh
# FLUX.2 [klein] 4B on a GPU machine, in one run (about 5 minutes on an H200):
#   1. build (build-gpu, CUDA, sm_90) if needed;
#   2. the flux tests: test_flux2 (the twin's fixtures in f32 and bf16 on
#      CUDA) and the flux_demo integration tests (tiny cpu vs cuda image,
#      a full-size 256x256 run);
#   3. flux_demo --random-weights full, 1024x1024, 4 steps, bf16: per-stage
#      seconds and peak GPU memory;
#   4. bench_flux2: Tyr's stages next to the PyTorch twin's (eager; with
#      FLUX_COMPILE=1 also torch.compile) in the same run.
# Usage, from the repository root: bench/flux2_gpu.sh OUTDIR [BUILD_DIR]
# Writes OUTDIR/flux2_gpu.log (everything) and OUTDIR/flux_1024.png.
set -u
out=${1:?usage: bench/flux2_gpu.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
log=$out/flux2_gpu.log
{
  echo "== machine"; nvidia-smi -L; git log --oneline -1
  if [ ! -x "$build/flux_demo" ] || [ ! -x "$build/bench/bench_flux2" ]; then
    echo "== build"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null &&
      cmake --build "$build" -j "$(nproc)" --target flux_demo bench_flux2 test_flux2 2>&1 | grep -E "error|warning" | head -20
  fi
  echo "== tests"
  (cd "$build" && ctest -R "flux" --output-on-failure 2>&1 | tail -n 30)
  TYR_TEST_DATA=$PWD/tests/data "$build/tests/test_flux2" 2>&1 | grep -E "^#|PASSED|FAILED|SKIPPED"
  echo "== flux_demo --random-weights full 1024x1024, 4 steps, cuda"
  "$build/flux_demo" "a cat sitting on a windowsill, photorealistic" --random-weights full \
    --device cuda --width 1024 --height 1024 --steps 4 --out "$out/flux_1024.png" 2>&1 | grep -v "^\["
  echo "== bench_flux2 (tyr vs the PyTorch twin, eager)"
  TYR_PYTHON=$py timeout 200 "$build/bench/bench_flux2" --device cuda --size 1024 --steps 4
  if [ -n "${FLUX_COMPILE:-}" ]; then
    echo "== bench_flux2 (tyr vs the PyTorch twin, torch.compile)"
    TYR_PYTHON=$py timeout 300 "$build/bench/bench_flux2" --device cuda --size 1024 --steps 4 --compile
  fi
} >"$log" 2>&1
cat "$log"
