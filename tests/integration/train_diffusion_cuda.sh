#!/bin/sh
# train_diffusion on the GPU: a few steps of the tiny and small configs with
# --device cuda must train, validate, checkpoint and generate, and their
# losses must follow the CPU run's (same seed and batches; the Philox
# initialisation is the same on both devices) to 1e-3 relative at every
# step.  Skips (77) without a GPU or without the CUDA backend in this build.
set -eu
build=$1 src=$2
bin=$build/train_diffusion
if [ -z "$(find "$build" -maxdepth 2 -name 'libtyr_cuda_kernels.a' 2>/dev/null)" ]; then
  echo "SKIP: this build has no CUDA backend"; exit 77
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "SKIP: no GPU"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for config in tiny small; do
  base="--config $config --data $src/data/tinyshakespeare.txt --batch-size 8 --iters 8 --eval-interval 4
        --eval-iters 2 --warmup 2 --decay-steps 8 --threads 2 --no-plot --seed 7"
  for dev in cpu cuda; do
    $bin $base --device $dev --out-dir "$tmp/$config-$dev" >"$tmp/$config-$dev.out" 2>"$tmp/$config-$dev.log" ||
      { echo "FAIL: $config on $dev:"; tail -n 20 "$tmp/$config-$dev.log"; exit 1; }
    grep '"loss"' "$tmp/$config-$dev/metrics.jsonl" | sed 's/.*"loss":\([-0-9.e]*\).*/\1/' >"$tmp/$config-$dev.loss"
  done
  paste "$tmp/$config-cpu.loss" "$tmp/$config-cuda.loss" | awk -v c=$config '
    { d = $1 - $2; if (d < 0) d = -d; if (d > 1e-3 * ($1 < 0 ? -$1 : $1)) { print "FAIL: " c " step " NR ": cpu " $1 " cuda " $2; bad = 1 } }
    END { exit bad }'
  echo "ok: $config: cuda losses follow the cpu run ($(tail -n 1 "$tmp/$config-cpu.loss") / $(tail -n 1 "$tmp/$config-cuda.loss"))"
  $bin --generate "$tmp/$config-cuda" --device cuda --seed 3 --blocks 2 >"$tmp/g.txt" 2>"$tmp/g.log" ||
    { cat "$tmp/g.log"; echo "FAIL: --generate on cuda"; exit 1; }
  echo "ok: $config: generated $(wc -c <"$tmp/g.txt") bytes on cuda"
done
