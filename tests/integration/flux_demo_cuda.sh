#!/bin/sh
# flux_demo on the GPU: the tiny pipeline (f32 weights) on cuda gives the
# CPU's image (the same Philox start noise and weights; bytes within 2 of
# each other).  Skips (77) without a GPU or without the CUDA backend in this
# build.  (bench/flux2_gpu.sh runs the full-size model.)
set -eu
build=$1
bin=$build/flux_demo
if [ -z "$(find "$build" -maxdepth 2 -name 'libtyr_cuda_kernels.a' 2>/dev/null)" ]; then
  echo "SKIP: this build has no CUDA backend"; exit 77
fi
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q GPU; then
  echo "SKIP: no GPU"; exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for dev in cpu cuda; do
  "$bin" "a lighthouse at dusk" --random-weights tiny --width 128 --height 128 --ppm --threads 4 \
    --device $dev --out "$tmp/$dev.ppm" >"$tmp/$dev.out" 2>"$tmp/$dev.log" ||
    { tail -n 20 "$tmp/$dev.log"; fail "tiny on $dev"; }
done
od -An -tu1 -v -j14 "$tmp/cpu.ppm" | tr -s ' ' '\n' | grep -v '^$' >"$tmp/cpu.txt"
od -An -tu1 -v -j14 "$tmp/cuda.ppm" | tr -s ' ' '\n' | grep -v '^$' >"$tmp/cuda.txt"
paste "$tmp/cpu.txt" "$tmp/cuda.txt" | awk '
  { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; s += d; n++ }
  END { printf "ok: tiny cpu vs cuda: max byte diff %d, mean %.3f over %d bytes\n", m, s / n, n;
        exit !(m <= 2 && s / n < 0.5) }' || fail "the GPU image differs from the CPU's"
