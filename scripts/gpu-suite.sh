#!/bin/sh
# The GPU test suite: configures a CUDA build of Tyr, builds it, runs the
# whole ctest suite, then test_cuda_ops (every CUDA kernel against the CPU)
# with verbose output, and ends with one summary line:
#   gpu-suite: PASS ... | gpu-suite: FAIL (<what failed>) ...
# Exit status 0 only when everything passed on a GPU.
#
# Usage, from anywhere in the repository:
#   scripts/gpu-suite.sh                 build in build-gpu/ and test
#   scripts/gpu-suite.sh --check         only report what is present or missing
#   scripts/gpu-suite.sh --build         configure and build build-gpu/, no tests
#   scripts/gpu-suite.sh --fetch-debs DIR
#       on a Debian/Ubuntu machine WITH network: download the Debian packages
#       the build needs (no root needed) into DIR, to carry to the GPU machine
#
# Environment:
#   CUDA_HOME        CUDA toolkit (default /usr/local/cuda)
#   TYR_CUDA_ARCHS   CMAKE_CUDA_ARCHITECTURES (default 90: H100/H200)
#   TYR_BUILD_DIR    build directory (default build-gpu)
#   TYR_DEPS         a folder of .deb files (from --fetch-debs) or an unpacked
#                    root (with usr/): used when system packages are missing;
#                    unpacked into the build directory, nothing is installed
#   JOBS             parallel build jobs (default: number of CPUs)
#   TYR_SANITIZER=1  also run test_cuda_ops under compute-sanitizer (memcheck)
#   TYR_PARITY=0     skip gpt_parity (GPT-2 124M vs PyTorch, every precision mode, minutes a seed)
#   TYR_PARITY_SEEDS its number of initial weights (default 3)
#   TYR_PARITY_TC=0  skip the short bf16 gpt_parity run with the tensor-core
#                    attention kernel instead of cuDNN's (TYR_CUDA_ATTN=tc:
#                    step-1 gradients and 20 steps' losses)
#   TYR_ALLOW_NO_GPU=1  do not fail when no GPU is found (build check only)
#   TYR_CMAKE_ARGS   extra arguments for cmake's configure step
#   TYR_BUILD_TARGETS  with --build: build only these targets (default: all)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
ARCHS=${TYR_CUDA_ARCHS:-90}
BUILD=${TYR_BUILD_DIR:-$ROOT/build-gpu}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
MODE=run
[ "${1:-}" = "--check" ] && MODE=check
[ "${1:-}" = "--build" ] && MODE=build

# Debian packages of everything the build links (bookworm names; Ubuntu 24.04
# has the same ones) plus the runtime libraries they need.
DEBS="libcmocka-dev libcmocka0 libopenblas-dev libopenblas-pthread-dev libopenblas0-pthread \
libopenblas0 libgfortran5 libjansson-dev libjansson4 libpcre2-dev libpcre2-8-0 libpcre2-16-0 \
libpcre2-32-0 libpcre2-posix3 libzstd-dev libzstd1 zlib1g-dev zlib1g libpng-dev libpng16-16 \
libsnappy-dev libsnappy1v5 pkgconf pkgconf-bin libpkgconf3 pkg-config"

if [ "${1:-}" = "--fetch-debs" ]; then
  dir=${2:?usage: gpu-suite.sh --fetch-debs DIR}
  mkdir -p "$dir" && cd "$dir" || exit 1
  echo "gpu-suite: downloading into $dir:"
  for p in $DEBS; do
    apt-get download "$p" >/dev/null 2>&1 && echo "  $p" || echo "  $p (not available here, skipped)"
  done
  du -sh . | sed 's/^/gpu-suite: total /'
  exit 0
fi

say() { printf '%s\n' "gpu-suite: $*"; }
MISSING=""
missing() { MISSING="$MISSING
  - $1"; }

# ---- carried dependencies ----------------------------------------------------
if [ -n "${TYR_DEPS:-}" ]; then
  if [ ! -d "$TYR_DEPS" ]; then
    say "TYR_DEPS=$TYR_DEPS is not a directory"
    exit 2
  fi
  DEPROOT=$TYR_DEPS
  if ls "$TYR_DEPS"/*.deb >/dev/null 2>&1; then
    DEPROOT=$BUILD/deps-root
    mkdir -p "$DEPROOT"
    for deb in "$TYR_DEPS"/*.deb; do
      if command -v dpkg-deb >/dev/null 2>&1; then
        dpkg-deb -x "$deb" "$DEPROOT" || say "could not unpack $deb"
      else # no dpkg: a .deb is an ar archive holding data.tar.*
        tmp=$(mktemp -d)
        (cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$DEPROOT") || say "could not unpack $deb"
        rm -rf "$tmp"
      fi
    done
    # .pc files name /usr: point them into the unpacked root
    find "$DEPROOT" -name '*.pc' -type f | while read -r pc; do
      sed -i "s|=/usr|=$DEPROOT/usr|g; s|-I/usr|-I$DEPROOT/usr|g; s|-L/usr|-L$DEPROOT/usr|g" "$pc"
    done
    # -dev packages link lib*.so to absolute /lib/... paths: point them into the
    # unpacked root, and drop static archives so that nothing links them by accident
    find "$DEPROOT" -type l -name 'lib*.so' | while read -r l; do
      t=$(readlink "$l")
      case "$t" in /*) [ -e "$DEPROOT$t" ] && ln -sf "$DEPROOT$t" "$l" ;; esac
    done
    find "$DEPROOT" -name 'lib*.a' -delete
    # openblas.pc and libopenblas.so are Debian "alternatives" links, made at install
    ob=$DEPROOT/usr/lib/x86_64-linux-gnu/openblas-pthread
    [ -f "$ob/pkgconfig/openblas.pc" ] && mkdir -p "$DEPROOT/usr/lib/x86_64-linux-gnu/pkgconfig" &&
      ln -sf "$ob/pkgconfig/openblas.pc" "$DEPROOT/usr/lib/x86_64-linux-gnu/pkgconfig/openblas.pc"
  fi
  L=$DEPROOT/usr/lib/x86_64-linux-gnu
  export PKG_CONFIG_PATH="$L/pkgconfig:$L/openblas-pthread/pkgconfig:$DEPROOT/usr/lib/pkgconfig:$DEPROOT/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CPATH="$DEPROOT/usr/include:$DEPROOT/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$L:$L/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$DEPROOT/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CMAKE_LIBRARY_PATH="$L${CMAKE_LIBRARY_PATH:+:$CMAKE_LIBRARY_PATH}"
  export PATH="$PATH:$DEPROOT/usr/bin"
  [ -x "$DEPROOT/usr/bin/pkgconf" ] && ! command -v pkg-config >/dev/null 2>&1 &&
    export PKG_CONFIG="$DEPROOT/usr/bin/pkgconf"
  say "using carried packages in $DEPROOT"
fi

# ---- what is here ----------------------------------------------------------------
say "checking the machine"
NVCC=""
if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  NVCC=$CUDA_HOME/bin/nvcc
elif command -v nvcc >/dev/null 2>&1; then
  NVCC=$(command -v nvcc)
else
  missing "nvcc (CUDA toolkit): not at $CUDA_HOME/bin/nvcc nor on PATH; set CUDA_HOME"
fi
[ -n "$NVCC" ] && say "  nvcc: $NVCC ($("$NVCC" --version | tail -n 1))"
command -v cmake >/dev/null 2>&1 && say "  cmake: $(cmake --version | head -n 1)" ||
  missing "cmake (3.20 or newer)"
CC_BIN=${CC:-}
[ -z "$CC_BIN" ] && for c in gcc cc clang; do command -v $c >/dev/null 2>&1 && CC_BIN=$c && break; done
if [ -n "$CC_BIN" ]; then
  say "  C compiler: $CC_BIN"
  if ! echo 'int main(void){return 0;}' | "$CC_BIN" -x c -fopenmp - -o /tmp/tyr-omp-check.$$ 2>/dev/null; then
    missing "OpenMP for $CC_BIN (gcc: libgomp, which comes with gcc; clang: libomp-dev)"
  fi
  rm -f /tmp/tyr-omp-check.$$
else
  missing "a C compiler (gcc or clang)"
fi
GPU_NAME=""
if command -v nvidia-smi >/dev/null 2>&1; then
  GPU_NAME=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
fi
[ -n "$GPU_NAME" ] && say "  GPU: $GPU_NAME" || say "  GPU: none found by nvidia-smi"

PKGCFG=${PKG_CONFIG:-pkg-config}
if command -v "$PKGCFG" >/dev/null 2>&1; then
  for m in openblas:libopenblas-dev jansson:libjansson-dev libpcre2-8:libpcre2-dev \
    libzstd:libzstd-dev zlib:zlib1g-dev libpng:libpng-dev; do
    mod=${m%%:*}
    pkg=${m#*:}
    if "$PKGCFG" --exists "$mod" 2>/dev/null; then
      say "  $mod: $("$PKGCFG" --modversion "$mod")"
    else
      missing "$mod (pkg-config module; Debian package $pkg)"
    fi
  done
else
  missing "pkg-config (Debian package pkgconf)"
fi
# libraries found by name: cmocka (tests), snappy
for lib in cmocka:libcmocka-dev:cmocka.h snappy:libsnappy-dev:snappy-c.h; do
  name=${lib%%:*}
  rest=${lib#*:}
  pkg=${rest%%:*}
  hdr=${rest#*:}
  found=no
  for d in ${CMAKE_LIBRARY_PATH:-} /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    [ -n "$d" ] && ls "$d"/lib$name.so* >/dev/null 2>&1 && found=yes && break
  done
  if [ $found = yes ] && echo "#include <$hdr>" | "${CC_BIN:-cc}" -E -x c - >/dev/null 2>&1; then
    say "  $name: found"
  elif [ $found = yes ] && [ "$name" = cmocka ]; then
    missing "cmocka.h (Debian package $pkg)"
  elif [ $found = no ]; then
    missing "lib$name (Debian package $pkg)"
  else
    say "  $name: found"
  fi
done

# cuDNN (required by the CUDA build) and NCCL (optional): where cmake/nvidia_libs.cmake looks
find_nvidia() { # header library -> the directory holding the library, or nothing
  for d in ${CUDNN_ROOT:+$CUDNN_ROOT/lib64 $CUDNN_ROOT/lib} ${NCCL_ROOT:+$NCCL_ROOT/lib64 $NCCL_ROOT/lib} \
    "$CUDA_HOME/lib64" "$CUDA_HOME/lib" /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib \
    $(ls -d /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null); do
    ls "$d"/lib"$2".so* >/dev/null 2>&1 && echo "$d" && return 0
  done
  return 1
}
if d=$(find_nvidia cudnn.h cudnn); then
  say "  cuDNN: $d"
else
  missing "cuDNN (libcudnn; in the CUDA toolkit, CUDNN_ROOT, or PyTorch's nvidia-cudnn wheel)"
fi
if d=$(find_nvidia nccl.h nccl); then
  say "  NCCL: $d"
else
  say "  NCCL: not found (optional: no NCCL process groups)"
fi

if [ -n "$MISSING" ]; then
  say "MISSING:$MISSING"
  say "On a Debian/Ubuntu machine with network, 'scripts/gpu-suite.sh --fetch-debs DIR'"
  say "downloads the packages; carry DIR here and run again with TYR_DEPS=DIR."
  say "FAIL (missing build dependencies)"
  exit 2
fi
if [ $MODE = check ]; then
  say "everything needed is present"
  exit 0
fi
if [ -z "$GPU_NAME" ] && [ "${TYR_ALLOW_NO_GPU:-0}" != 1 ]; then
  say "no GPU: the CUDA tests would only be skipped (TYR_ALLOW_NO_GPU=1 builds and runs anyway)"
  say "FAIL (no GPU)"
  exit 3
fi

# ---- configure, build ---------------------------------------------------------------
mkdir -p "$BUILD"
LOG=$BUILD/gpu-suite-logs
mkdir -p "$LOG"
say "configuring $BUILD (CUDA archs $ARCHS)"
if ! cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTYR_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" ${TYR_CMAKE_ARGS:-} >"$LOG/configure.log" 2>&1; then
  tail -n 40 "$LOG/configure.log"
  say "FAIL (cmake configure; log in $LOG/configure.log)"
  exit 1
fi
if ! grep -q "CUDA backend enabled" "$LOG/configure.log"; then
  grep "tyr:" "$LOG/configure.log"
  say "FAIL (cmake did not enable the CUDA backend; log in $LOG/configure.log)"
  exit 1
fi
say "building with $JOBS jobs"
start=$(date +%s)
# TYR_BUILD_TARGETS: only these targets (with --build: what a bench script needs)
# shellcheck disable=SC2086
if ! cmake --build "$BUILD" -j "$JOBS" ${TYR_BUILD_TARGETS:+--target $TYR_BUILD_TARGETS} >"$LOG/build.log" 2>&1; then
  grep -E "error|Error" "$LOG/build.log" | head -n 40
  say "FAIL (build; log in $LOG/build.log)"
  exit 1
fi
say "built in $(($(date +%s) - start)) s"
[ $MODE = build ] && exit 0

# ---- test ---------------------------------------------------------------------------------
FAILED=""
say "ctest: the whole suite"
{
  (cd "$BUILD" && ctest --output-on-failure -j "$JOBS" -E '^test_cuda_ops$')
  echo $? >"$LOG/ctest.status"
} 2>&1 | tee "$LOG/ctest.log"
CTEST_LINE=$(grep -E "tests passed|tests failed" "$LOG/ctest.log" | tail -n 1)
[ "$(cat "$LOG/ctest.status")" = 0 ] || FAILED="$FAILED ctest"

say "test_cuda_ops (verbose)"
{
  TYR_CUDA_TEST_VERBOSE=1 "$BUILD/tests/test_cuda_ops"
  echo $? >"$LOG/test_cuda_ops.status"
} 2>&1 | tee "$LOG/test_cuda_ops.log"
# cmocka's closing lines: "[  PASSED  ] N test(s)." and the same for SKIPPED / FAILED
count() { sed -n "s/^\[  $1 *\] \([0-9]*\) test(s).*/\1/p" "$LOG/test_cuda_ops.log" | tail -n 1; }
NPASS=$(count PASSED)
NFAIL=$(count FAILED)
NSKIP=$(count SKIPPED)
NPASS=${NPASS:-0}
NFAIL=${NFAIL:-0}
NSKIP=${NSKIP:-0}
if [ "$(cat "$LOG/test_cuda_ops.status")" != 0 ] || [ "$NFAIL" != 0 ] || [ "$NPASS" = 0 ]; then
  FAILED="$FAILED test_cuda_ops"
elif [ "$NSKIP" != 0 ] && [ -n "$GPU_NAME" ]; then
  FAILED="$FAILED test_cuda_ops(skipped: the GPU was not usable)"
fi

# the convolution family on the GPU (cuDNN): every op and gradient against the CPU
say "test_cuda_conv (verbose)"
"$BUILD/tests/test_cuda_conv" >"$LOG/test_cuda_conv.log" 2>&1
CONV_STATUS=$?
tail -n 4 "$LOG/test_cuda_conv.log"
if [ $CONV_STATUS != 0 ] || grep -q "FAILED" "$LOG/test_cuda_conv.log"; then
  FAILED="$FAILED test_cuda_conv"
elif grep -q "SKIPPED" "$LOG/test_cuda_conv.log" && [ -n "$GPU_NAME" ]; then
  FAILED="$FAILED test_cuda_conv(skipped: the GPU was not usable)"
fi

# GPT-2 124M against PyTorch from the same weights and batches, every
# precision mode, from TYR_PARITY_SEEDS initial weights (default 3; a few
# minutes a seed on an H200: tf32, bf16-matmul and bf16 alone took 100 s
# when bf16-matmul's twin was autocast's run; its own twin, PyTorch's bf16in
# mode (f32 products of bf16-rounded operands), adds a run of its own).
# Each run checks the step-1 gradients and losses; the loss curves' levels
# are compared over the seeds
# (bench/gpt_parity_seeds.py), since one pair of runs drifts apart by chaos.
# TYR_PARITY=0 skips it; a python3 without PyTorch+CUDA skips it with a note.
PARITY="skipped"
if [ "${TYR_PARITY:-1}" != 0 ] && [ -n "$GPU_NAME" ]; then
  if python3 -c 'import torch; assert torch.cuda.is_available()' >/dev/null 2>&1; then
    say "gpt_parity: GPT-2 124M, Tyr vs PyTorch, 300 steps in each precision mode, ${TYR_PARITY_SEEDS:-3} seeds"
    "$BUILD/tyr_prepare" -q --tiktoken "$ROOT/tests/data/tokenizer/gpt2.tiktoken.zst" \
      --pattern gpt2 -o "$LOG/parity-tokens" "$ROOT/data/tinyshakespeare.txt" >/dev/null
    PARITY_STATUS=$?
    dirs=""
    seed=1
    while [ $PARITY_STATUS = 0 ] && [ $seed -le "${TYR_PARITY_SEEDS:-3}" ]; do
      (cd "$ROOT" && "$BUILD/bench/gpt_parity" --device cuda --batch 8 --steps 300 --seed $seed \
        --tokens "$LOG/parity-tokens/tinyshakespeare_train_000000.bin" --out "$LOG/parity$seed") \
        >"$LOG/gpt_parity$seed.log" 2>&1
      # a run's own verdict includes its single-pair curve bound: only its
      # other checks (step-1 gradients and loss, errors) count here
      grep -q "^gpt_parity: \(PASS\|FAIL\)" "$LOG/gpt_parity$seed.log" || PARITY_STATUS=1
      grep "FAIL" "$LOG/gpt_parity$seed.log" | grep -v "^gpt_parity: FAIL" |
        grep -qv "loss curves differ" && PARITY_STATUS=1
      dirs="$dirs $LOG/parity$seed"
      seed=$((seed + 1))
    done
    [ $PARITY_STATUS = 0 ] && { python3 "$ROOT/bench/gpt_parity_seeds.py" $dirs \
      >"$LOG/gpt_parity.log" 2>&1 || PARITY_STATUS=1; }
    cat "$LOG/gpt_parity.log" 2>/dev/null
    if [ $PARITY_STATUS = 0 ]; then
      PARITY="PASS"
    else
      PARITY="FAIL"
      FAILED="$FAILED gpt_parity"
    fi
  else
    say "gpt_parity skipped: python3 has no PyTorch with CUDA"
  fi
fi

# The runs above use the default attention, cuDNN's where it applies (the
# bf16 mode, src/cuda/attention_cudnn.cu); the tensor-core kernel, which
# runs where cuDNN does not, in the whole model: bf16 mixed precision,
# step-1 gradients and loss against PyTorch's bf16 autocast, 20 steps (a
# minute).
if [ "${TYR_PARITY:-1}" != 0 ] && [ "${TYR_PARITY_TC:-1}" != 0 ] && [ "$PARITY" != skipped ]; then
  say "gpt_parity with TYR_CUDA_ATTN=tc: bf16, 20 steps"
  (cd "$ROOT" && TYR_CUDA_ATTN=tc "$BUILD/bench/gpt_parity" --device cuda \
    --batch 8 --steps 20 --seed 1 --modes bf16 \
    --tokens "$LOG/parity-tokens/tinyshakespeare_train_000000.bin" --out "$LOG/parity-tc") \
    >"$LOG/gpt_parity_tc.log" 2>&1
  tail -n 6 "$LOG/gpt_parity_tc.log"
  if grep -q "^gpt_parity: PASS" "$LOG/gpt_parity_tc.log"; then
    PARITY="$PARITY, tensor-core attention PASS"
  else
    PARITY="$PARITY, tensor-core attention FAIL"
    FAILED="$FAILED gpt_parity(tc)"
  fi
fi

if [ "${TYR_SANITIZER:-0}" = 1 ]; then
  CS=$CUDA_HOME/bin/compute-sanitizer
  command -v compute-sanitizer >/dev/null 2>&1 && CS=$(command -v compute-sanitizer)
  say "test_cuda_ops under compute-sanitizer (memcheck; caching allocator off)"
  if TYR_CUDA_NO_CACHE=1 "$CS" --tool memcheck --error-exitcode 99 "$BUILD/tests/test_cuda_ops" \
    >"$LOG/sanitizer.log" 2>&1; then
    tail -n 3 "$LOG/sanitizer.log"
  else
    tail -n 60 "$LOG/sanitizer.log"
    FAILED="$FAILED compute-sanitizer"
  fi
fi

SUMMARY="ctest: ${CTEST_LINE:-no result}; test_cuda_ops: $NPASS passed, $NFAIL failed, $NSKIP skipped; gpt_parity: $PARITY; GPU: ${GPU_NAME:-none}; logs in $LOG"
if [ -z "$FAILED" ] && [ -z "$GPU_NAME" ]; then
  say "PASS (build and CPU tests only: no GPU, the CUDA tests were skipped) - $SUMMARY"
  exit 0
fi
if [ -z "$FAILED" ]; then
  say "PASS - $SUMMARY"
  exit 0
fi
say "FAIL ($(echo $FAILED)) - $SUMMARY"
exit 1
