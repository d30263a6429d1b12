#!/bin/sh
# TrainGPT's CPU training step against PyTorch on two cores, with the
# profile of where Tyr's time goes, in one run of about two minutes (with
# PyTorch 2.11; PyTorch 1.13 on cpu-dev takes about 5) on an
# existing build (builds nothing: on the GPU machine, build-gpu from
# scripts/gpu-suite.sh --build; here any build with bench_train_gpt):
#   1. the machine: CPU model, cores, OpenBLAS, PyTorch's version and threads;
#   2. two rounds of bench_train_gpt for both presets (shakespeare_cpu and the
#      6-layer x 384 one), Tyr and PyTorch pinned to the same two cores with
#      taskset, each printing both rates and their ratio;
#   3. bench_train_gpt --profile: the per-kernel table (tyr/profile.h) of
#      each preset, same two cores.
# Writes OUTDIR/cpu_profile.log and ends with the line
# "cpu_profile: <preset> <ratio> ... (best of 2 rounds)", or "cpu_profile: FAIL".
# Usage, from the repository root: bench/cpu_profile.sh OUTDIR [BUILD_DIR]
# Environment: PYTHON (PyTorch's interpreter; default: python3 or
# /usr/bin/python3, the first that imports torch), CORES (the taskset list,
# default 0,1), STEPS (bench_train_gpt --steps, default 12).
set -u
out=${1:?usage: bench/cpu_profile.sh OUTDIR [BUILD_DIR]}
build=${2:-build-gpu}
# PyTorch's interpreter: $PYTHON, else the first of python3 and /usr/bin/python3 that imports torch
py=${PYTHON:-}
if [ -z "$py" ]; then
  for c in python3 /usr/bin/python3; do
    if "$c" -c 'import torch' >/dev/null 2>&1; then py=$c; break; fi
  done
  py=${py:-python3}
fi
cores=${CORES:-0,1}
steps=${STEPS:-12}
bench=$build/bench/bench_train_gpt
mkdir -p "$out"
log=$out/cpu_profile.log
: > "$log"
if [ ! -x "$bench" ]; then
  echo "cpu_profile: FAIL ($bench is missing: build it first, e.g. scripts/gpu-suite.sh --build)" |
    tee -a "$log"
  exit 1
fi
{
  echo "== machine"
  date -u
  git rev-parse --short HEAD 2>/dev/null
  grep -m1 "model name" /proc/cpuinfo
  echo "cores: $(nproc) available, pinned to $cores"
  if grep -q -w avx512f /proc/cpuinfo; then echo "AVX-512F: yes"; else echo "AVX-512F: no"; fi
  echo "load average: $(cat /proc/loadavg)"
  "$py" -c 'import torch
print("torch", torch.__version__)
for l in torch.__config__.show().splitlines():
    if any(k in l for k in ("CPU capability", "Math Kernel", "oneDNN", "OpenMP")):
        print("  " + l.strip())
    for w in l.replace(",", " ").split():
        if w.startswith(("BLAS_INFO=", "USE_MKLDNN=")):
            print("  " + w)' 2>&1
} >> "$log"
failed=""
for round in 1 2; do
  echo "== round $round: bench_train_gpt --steps $steps --python $py (taskset -c $cores)" >> "$log"
  taskset -c "$cores" "$bench" --steps "$steps" --threads 2 --python "$py" >> "$log" 2>&1 ||
    failed="$failed round$round"
done
for p in shakespeare_cpu shakespeare_6layer_b16; do
  echo "== profile: $p (taskset -c $cores)" >> "$log"
  taskset -c "$cores" "$bench" --no-torch --preset "$p" --steps 4 --profile 8 --threads 2 \
    >> "$log" 2>&1 || failed="$failed profile-$p"
done
# the best ratio of each preset over the two rounds
summary=$(awk '$1 ~ /^shakespeare_/ && NF == 5 && $5 != "nan" {
                 if (!($1 in best) || $5 > best[$1]) best[$1] = $5 }
               END { for (p in best) printf "%s %.2fx  ", p, best[p] }' "$log")
if [ -z "$failed" ] && [ -n "$summary" ]; then
  echo "cpu_profile: ${summary}(Tyr / PyTorch tok/s, best of 2 rounds)" | tee -a "$log"
else
  echo "cpu_profile: FAIL (${failed:- no PyTorch figures} ) $summary" | tee -a "$log"
  exit 1
fi
