#!/bin/sh
# OpenMP waiting policy for train_gpt on a few cores, idle and with CPU-bound
# competitors on the same cores: tokens/s of a short shakespeare_cpu run for
# each GOMP_SPINCOUNT / OMP_WAIT_POLICY setting, and the cost of checked mode
# (TYR_CHECKED=1, tyr/debug.h) in a Release build.
#   bench/omp_spin.sh TRAIN_GPT [CORES=4] [ITERS=150] [PART=all|1|2]
# Prints one line per (setting, load): median tokens/s of 3 runs.
set -eu
bin=$1 cores=${2:-4} iters=${3:-150} part=${4:-all}
last=$((cores - 1))
run() { # env... -> tokens/s
  env "$@" taskset -c 0-$last "$bin" --iters "$iters" --eval-interval 100000 --eval-iters 1 \
    --sample-chars 0 --no-plot --threads "$cores" --out-dir "${TMPDIR:-/tmp}/omp_spin_out" 2>&1 >/dev/null |
    sed -n 's/.* steps in .* s (\([0-9]*\) tok\/s).*/\1/p'
}
median3() { printf '%s\n%s\n%s\n' "$1" "$2" "$3" | sort -n | sed -n 2p; }
busy_start() { # n competitors, one per core
  pids=""
  i=0
  while [ $i -lt "$1" ]; do
    taskset -c $((i % cores)) sh -c 'while :; do :; done' &
    pids="$pids $!"
    i=$((i + 1))
  done
}
busy_stop() { for p in $pids; do kill "$p"; done; wait 2>/dev/null || true; }
measure() { # label env...
  label=$1
  shift
  idle=$(median3 "$(run "$@")" "$(run "$@")" "$(run "$@")")
  busy_start "$cores"
  busy=$(median3 "$(run "$@")" "$(run "$@")" "$(run "$@")")
  busy_stop
  half=$((cores / 2))
  busy_start "$half"
  bhalf=$(median3 "$(run "$@")" "$(run "$@")" "$(run "$@")")
  busy_stop
  printf '%-34s idle %7s tok/s | %d competitors %7s tok/s | %d competitors %7s tok/s\n' \
    "$label" "$idle" "$cores" "$busy" "$half" "$bhalf"
}
echo "train_gpt shakespeare_cpu, $iters steps, --threads $cores pinned to cores 0-$last ($(nproc) cores)"
if [ "$part" != 2 ]; then
  measure "GOMP_SPINCOUNT=1000000 (old)" GOMP_SPINCOUNT=1000000 TYR_CHECKED=0
  measure "libgomp default (300000)" TYR_NO_ENV_SETUP=1 TYR_CHECKED=0
  measure "GOMP_SPINCOUNT=100000" GOMP_SPINCOUNT=100000 TYR_CHECKED=0
  measure "GOMP_SPINCOUNT=30000" GOMP_SPINCOUNT=30000 TYR_CHECKED=0
fi
if [ "$part" != 1 ]; then
  measure "GOMP_SPINCOUNT=10000" GOMP_SPINCOUNT=10000 TYR_CHECKED=0
  measure "GOMP_SPINCOUNT=1000" GOMP_SPINCOUNT=1000 TYR_CHECKED=0
  measure "OMP_WAIT_POLICY=passive" OMP_WAIT_POLICY=passive TYR_CHECKED=0
  echo "checked mode (TYR_CHECKED), GOMP_SPINCOUNT=1000000, idle:"
  c0=$(median3 "$(run TYR_CHECKED=0)" "$(run TYR_CHECKED=0)" "$(run TYR_CHECKED=0)")
  c1=$(median3 "$(run TYR_CHECKED=1)" "$(run TYR_CHECKED=1)" "$(run TYR_CHECKED=1)")
  echo "  TYR_CHECKED=0 $c0 tok/s, TYR_CHECKED=1 $c1 tok/s"
fi
