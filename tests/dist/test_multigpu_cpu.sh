#!/bin/sh
# bench/multigpu.sh's CPU mode, short: the collectives (Tyr over MPI, and
# torch.distributed over gloo when PyTorch is there) and the fault runs at
# 2 ranks (kill -9 of one rank ends the job within 60 s; a ZeRO-1 checkpoint
# of 2 ranks resumed at 1 gives the straight run's losses).
#   test_multigpu_cpu.sh BUILD_DIR SOURCE_DIR
B=$1
S=$2
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
out=$(NO_BUILD=1 DEVICE=cpu NGPUS=2 STAGES="coll faults" MAX_MB=0.0625 STEPS=6 sh "$S/bench/multigpu.sh" "$T/mg" "$B" 2>&1)
rc=$?
echo "$out" | sed -n '/== summary/,$p'
[ $rc = 0 ] || { echo "$out" | tail -n 40; echo "FAIL: multigpu.sh exit status $rc"; exit 1; }
for row in "coll allreduce n=2" "coll reducescatter n=2" "coll allgather n=2" "faults kill n=2" "faults resume n=2->1"; do
  grep -q "^$row " "$T/mg/summary.txt" || { echo "FAIL: no summary row '$row'"; exit 1; }
done
echo "test_multigpu_cpu: PASS"
