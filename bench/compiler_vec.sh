#!/bin/sh
# Which loops of the CPU kernels each C compiler vectorises, and how fast
# the activation loops run when it does not.  For every compiler given
# (default: gcc, and gcc-12 and gcc-13 where installed):
#   1. -fopt-info-vec-optimized over the sources of cmake/isa.cmake with the
#      x86-64-v4 flags the build uses: the vectorised loop sites (file:line,
#      with a count for sites inside macros and inlined functions);
#   2. bench/fastmath_loops.c built with the same flags and run on one core.
# Then the sites one compiler vectorises and another does not.  Builds
# nothing else; run from the repository root:
#   bench/compiler_vec.sh [OUTDIR] [COMPILER...]
set -u
out=${1:-/tmp/compiler_vec}
[ $# -gt 0 ] && shift
ccs=${*:-}
if [ -z "$ccs" ]; then
  for c in gcc gcc-12 gcc-13; do command -v $c >/dev/null 2>&1 && ccs="$ccs $c"; done
fi
mkdir -p "$out"
flags="-O3 -DNDEBUG -march=x86-64-v4 -mtune=znver3 -fno-trapping-math -fopenmp -std=gnu11"
sources="attention copy elementwise nn optim reduce rotary"
first=""
for cc in $ccs; do
  name=$(basename "$cc")
  echo "== $cc: $($cc --version | head -n 1)"
  : > "$out/vec_$name.txt"
  for f in $sources; do
    # shellcheck disable=SC2086 # $flags is a list of flags
    $cc $flags -DTYR_CPU_ISA=v4 -Iinclude -Isrc -fopt-info-vec-optimized -c "src/cpu/$f.c" \
      -o "$out/$f.o" 2>> "$out/vec_$name.txt" || echo "$cc: src/cpu/$f.c did not compile"
  done
  grep -o "src/cpu/[a-z_]*\.[ch]:[0-9]*:[0-9]*: optimized: loop vectorized" "$out/vec_$name.txt" |
    cut -d: -f1,2 | sort | uniq -c | awk '{print $2 " x" $1}' > "$out/loops_$name.txt"
  echo "vectorised loop sites: $(wc -l < "$out/loops_$name.txt")"
  # shellcheck disable=SC2086
  if $cc $flags bench/fastmath_loops.c -o "$out/fastmath_loops_$name" -lm; then
    if command -v taskset >/dev/null 2>&1; then
      taskset -c 0 "$out/fastmath_loops_$name"
    else
      "$out/fastmath_loops_$name"
    fi
  fi
  if [ -n "$first" ] && [ "$first" != "$name" ]; then
    echo "-- sites $first vectorises and $name does not:"
    comm -23 "$out/loops_$first.txt" "$out/loops_$name.txt"
    echo "-- sites $name vectorises and $first does not:"
    comm -13 "$out/loops_$first.txt" "$out/loops_$name.txt"
  fi
  [ -z "$first" ] && first=$name
done
