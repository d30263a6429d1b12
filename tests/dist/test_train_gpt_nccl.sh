#!/bin/sh
# train_gpt through NCCL at world size 1 on a GPU (TYR_DIST_BACKEND=nccl):
# data-parallel buckets over NCCL give the losses of the plain run (eager
# steps, --no-cuda-graph), and ZeRO-1 and Muon train.  SKIP (77) without a
# GPU or a build without NCCL.
#   test_train_gpt_nccl.sh BUILD_DIR SOURCE_DIR
set -u
B=$1
S=$2
bin=$B/train_gpt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
small="--data $S/data/tinyshakespeare.txt --device cuda --n-layer 2 --n-head 2 --n-embd 64
       --block-size 32 --batch-size 8 --iters 30 --eval-interval 10 --eval-iters 2
       --sample-chars 0 --no-plot --warmup 5 --decay-steps 25 --no-cuda-graph --dropout 0"
fail() { echo "FAIL: $*"; exit 1; }
if ! $bin $small --iters 1 --out-dir "$T/probe" >/dev/null 2>"$T/probe.log"; then
  echo "SKIP: no usable GPU: $(tail -n 1 "$T/probe.log")"
  exit 77
fi
TYR_DIST_BACKEND=nccl $bin $small --iters 1 --out-dir "$T/probe2" >/dev/null 2>"$T/probe2.log"
if grep -q "no NCCL" "$T/probe2.log"; then echo "SKIP: built without NCCL"; exit 77; fi
losses() { grep '"loss"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
$bin $small --out-dir "$T/plain" >/dev/null 2>"$T/plain.log" || { cat "$T/plain.log"; fail "plain run"; }
for mode in "" "--zero 1" "--optim muon"; do
  name=$(echo "x$mode" | tr -d ' -')
  TYR_DIST_BACKEND=nccl $bin $small $mode --out-dir "$T/$name" >"$T/$name.out" 2>&1 ||
    { cat "$T/$name.out"; fail "NCCL run '$mode'"; }
  grep -q "(nccl)" "$T/$name.out" || { cat "$T/$name.out"; fail "'$mode' did not use NCCL"; }
  grep "final:" "$T/$name.out" | sed "s/^/nccl '$mode': /"
  [ "$(losses "$T/$name" | wc -l)" = 30 ] || fail "'$mode': expected 30 loss lines"
  losses "$T/$name" | awk '{ if ($1 != $1 + 0 || $1 > 10) exit 1 }' || fail "'$mode': bad losses"
done
losses "$T/plain" >"$T/l1"
losses "$T/x" >"$T/l2"
d=$(paste "$T/l1" "$T/l2" | awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d} END {printf "%.2g", m}')
echo "NCCL data parallel vs plain: largest loss difference $d"
awk -v d="$d" 'BEGIN {exit !(d <= 1e-5)}' || fail "NCCL data parallel differs from the plain run by $d"
echo "test_train_gpt_nccl: PASS"
