#!/bin/sh
# A checkpoint written by a data-parallel run at world size 2 (after step 10
# of 20) resumes at world sizes 1 and 3, with plain data parallel and with
# ZeRO-1 (whose sharded moments are gathered into the file and re-sharded on
# load), and the end matches one process that trained straight through.
#   test_resume.sh BUILD_DIR SOURCE_DIR
B=$1
S=$2
RUN="sh $S/tests/dist/run.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for mode in ddp zero; do
  $RUN 2 "$B/tests/dist_ddp" --mode $mode --save "$T/$mode.safetensors" --save-step 10 2>&1 |
    grep "dist_ddp: mode" || { echo "FAIL: $mode np 2 with --save"; exit 1; }
  for np in 1 3; do
    out=$($RUN $np "$B/tests/dist_ddp" --mode $mode --resume "$T/$mode.safetensors" 2>&1)
    echo "$out" | grep "dist_ddp: mode"
    echo "$out" | grep -q "dist_ddp: mode .*: PASS" || { echo "FAIL: $mode resumed at np $np"; exit 1; }
  done
done
echo "test_resume: PASS"
