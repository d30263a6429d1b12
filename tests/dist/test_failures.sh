#!/bin/sh
# Failure modes under mpirun -np 2: ranks that call a collective with
# different counts stop with a message naming the op (never hang); a rank
# killed with SIGKILL mid-collective makes the job exit non-zero within 60 s.
#   test_failures.sh BUILD_DIR SOURCE_DIR
B=$1
S=$2
RUN="sh $S/tests/dist/run.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

out=$(timeout 120 $RUN 2 "$B/tests/dist_collectives" mismatch 2>&1)
rc=$?
echo "$out" | grep "ranks disagree" | head -2
[ $rc -ne 0 ] || fail "mismatch: exit status 0"
[ $rc -ne 124 ] || fail "mismatch: hung"
echo "$out" | grep -q "tyr_dist_all_reduce: ranks disagree.*10 f32 elements.*12 f32 elements" ||
  fail "mismatch: no message naming the op and both counts"

t0=$(date +%s)
out=$(timeout 120 $RUN 2 "$B/tests/dist_collectives" kill 2>&1)
rc=$?
t1=$(date +%s)
echo "$out" | grep -i "signal 9\|killed" | head -2
echo "kill: exit status $rc after $((t1 - t0)) s"
[ $rc -ne 0 ] || fail "kill: exit status 0"
[ $rc -ne 124 ] || fail "kill: still running after 120 s"
[ $((t1 - t0)) -le 60 ] || fail "kill: took $((t1 - t0)) s"
# a rank that does not come: the waiting rank stops after TYR_DIST_TIMEOUT
out=$(timeout 120 $RUN 2 -x TYR_DIST_TIMEOUT=1 "$B/tests/dist_collectives" late 2>&1)
rc=$?
echo "$out" | grep "timed out" | head -2
[ $rc -ne 0 ] || fail "late: exit status 0"
echo "$out" | grep -q "tyr_dist_all_reduce: rank 0 of 2: timed out after 1 s" ||
  fail "late: no timeout message naming the op and the rank"
echo "test_failures: PASS"
