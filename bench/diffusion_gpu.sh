#!/bin/sh
# TrainDiffusion on a GPU machine, in one run:
#   1. bench_diffusion --config full on cuda: Tyr's training tok/s next to the
#      PyTorch twin (eager, then torch.compile) on the same batches shape;
#   2. train_diffusion --preset gpu (full config, masked CE): the final
#      validation masked CE (a published 6-layer, 384-wide character diffusion
#      model reaches about 2.09 on Shakespeare) and the ELBO in bits/char;
#   3. the same with --loss elbo, and train_gpt --preset shakespeare_gpu, whose
#      validation loss / ln 2 is the autoregressive bits per character.
# Usage, from the repository root: bench/diffusion_gpu.sh [BUILD_DIR]
# (default build-gpu, configured and built here with CUDA; PYTHON: the
# interpreter with PyTorch 2, default python3).
set -eu
build=${1:-build-gpu}
py=${PYTHON:-python3}
if [ ! -x "$build/train_diffusion" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  cmake --build "$build" -j "$(nproc)" --target train_diffusion train_gpt bench_diffusion >/dev/null
fi
echo "== speed: full config, batch 64, cuda"
TYR_PYTHON=$py "$build/bench/bench_diffusion" --config full --batch 64 --steps 50 --device cuda --threads 8
TYR_PYTHON=$py "$build/bench/bench_diffusion" --config full --batch 64 --steps 50 --device cuda --threads 8 --compile
echo "== quality: --preset gpu, masked CE"
"$build/train_diffusion" --preset gpu --out-dir out/diffusion_gpu_ce 2>&1 | grep -E "^step|^final|steps in"
echo "== quality: --preset gpu --loss elbo"
"$build/train_diffusion" --preset gpu --loss elbo --out-dir out/diffusion_gpu_elbo 2>&1 | grep -E "^step|^final|steps in"
echo "== TrainGPT on the same split (val loss in nats; / ln 2 for bits per character)"
"$build/train_gpt" --preset shakespeare_gpu --sample-chars 0 --out-dir out/diffusion_gpu_gpt 2>&1 | grep -E "^final|steps in"
echo "== a sample"
"$build/train_diffusion" --generate out/diffusion_gpu_ce --device cuda --no-color --blocks 4 --seed 1 2>/dev/null
