#!/bin/sh
# All-reduce bandwidth and data-parallel step time: Tyr over MPI (bench_dist
# under mpirun) next to torch.distributed over gloo (torch_dist.py), in one
# run, on this machine.
#   bench/bench_dist.sh [BUILD_DIR] [NP] [MAX_MB] [STEPS]
# On a GPU machine, NCCL instead (Tyr only):
#   TYR_DIST_BACKEND=nccl ./build-gpu/bench/bench_dist --device cuda --max-mb 1024
set -eu
B=${1:-build}
NP=${2:-2}
MAX_MB=${3:-64}
STEPS=${4:-20}
S=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
# Linux cross-memory attach for large shared-memory messages (the tests turn
# it off, as some containers forbid it; it is several times faster here)
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-cma}
echo "== machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git -C "$S" rev-parse --short HEAD)"
echo "== Tyr (MPI: $(mpirun --version 2>&1 | head -n 1))"
sh "$S/tests/dist/run.sh" 1 "$B/bench/bench_dist" --max-mb "$MAX_MB" --steps "$STEPS" --threads 1 | grep "tyr ddp" | sed 's/^tyr ddp/tyr ddp (one process)/'
sh "$S/tests/dist/run.sh" "$NP" "$B/bench/bench_dist" --max-mb "$MAX_MB" --steps "$STEPS" --threads 1 2>&1 | grep -v '^$'
echo "== PyTorch (gloo)"
OMP_NUM_THREADS=1 "$PY" "$S/bench/torch_dist.py" --np "$NP" --max-mb "$MAX_MB" --steps "$STEPS" --threads 1
