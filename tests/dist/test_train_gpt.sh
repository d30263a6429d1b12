#!/bin/sh
# train_gpt data parallel, unchanged, under mpirun: 2 ranks at batch B/2
# each give the losses of one process at batch B (AdamW, ZeRO-1 AdamW,
# Muon); only rank 0 writes metrics; a checkpoint written by a ZeRO-1 run
# at 2 ranks resumes at 1 and 3 ranks (plain AdamW and ZeRO-1) and ends
# where the straight run ends.
#   test_train_gpt.sh BUILD_DIR SOURCE_DIR
set -u
B=$1
S=$2
RUN="sh $S/tests/dist/run.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
bin=$B/train_gpt
small="--data $S/data/tinyshakespeare.txt --n-layer 2 --n-head 2 --n-embd 32 --block-size 16
       --batch-size 6 --iters 20 --eval-interval 10 --eval-iters 2 --sample-chars 0 --no-plot
       --warmup 5 --decay-steps 25 --no-static"
fail() { echo "FAIL: $*"; exit 1; }
losses() { grep '"loss"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
# the largest relative difference between two runs' per-step losses
compare() {
  losses "$1" >"$T/l1"
  losses "$2" >"$T/l2"
  [ "$(wc -l <"$T/l1")" = "$(wc -l <"$T/l2")" ] || fail "$3: $(wc -l <"$T/l1") vs $(wc -l <"$T/l2") loss lines"
  d=$(paste "$T/l1" "$T/l2" | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / $1; if (r > m) m = r} END {printf "%.2g", m}')
  echo "$3: $(wc -l <"$T/l1") steps, largest relative loss difference $d"
  awk -v d="$d" 'BEGIN {exit !(d <= 2e-6)}' || fail "$3: losses differ by $d"
}

for opt in adamw muon; do
  OMP_NUM_THREADS=1 $bin $small --optim $opt --threads 1 --out-dir "$T/one_$opt" >/dev/null 2>"$T/one.log" ||
    { cat "$T/one.log"; fail "one process ($opt)"; }
  $RUN 2 $bin $small --optim $opt --out-dir "$T/two_$opt" >"$T/two.out" 2>&1 ||
    { cat "$T/two.out"; fail "2 ranks ($opt)"; }
  compare "$T/one_$opt" "$T/two_$opt" "$opt, 2 ranks vs 1"
done
$RUN 2 $bin $small --zero 1 --out-dir "$T/two_zero" >"$T/zero.out" 2>&1 || { cat "$T/zero.out"; fail "ZeRO-1"; }
grep "ZeRO-1 over 2 ranks" "$T/zero.out"
compare "$T/one_adamw" "$T/two_zero" "ZeRO-1, 2 ranks vs AdamW, 1"

# gradient accumulation: 3 micro-batches of 2 rows at 2 ranks (1 row each;
# only the last micro-batch communicates) = batch 6 at 1 rank
$RUN 2 $bin $small --batch-size 2 --grad-accum 3 --out-dir "$T/acc" >"$T/acc.out" 2>&1 ||
  { cat "$T/acc.out"; fail "grad-accum at 2 ranks"; }
compare "$T/one_adamw" "$T/acc" "--grad-accum 3 --batch-size 2 at 2 ranks vs --batch-size 6 at 1"

# resume at other world sizes from a ZeRO-1 checkpoint written at 2
$RUN 2 $bin $small --zero 1 --max-steps 10 --out-dir "$T/r" >"$T/r.out" 2>&1 || { cat "$T/r.out"; fail "ZeRO-1 first half"; }
cp -r "$T/r" "$T/r3"
OMP_NUM_THREADS=1 $bin $small --threads 1 --out-dir "$T/r" --resume "$T/r/last.safetensors" >/dev/null 2>"$T/r1.log" ||
  { cat "$T/r1.log"; fail "resume at 1 rank"; }
compare "$T/one_adamw" "$T/r" "ZeRO-1 at 2 ranks, resumed by AdamW at 1"
$RUN 3 $bin $small --zero 1 --out-dir "$T/r3" --resume "$T/r3/last.safetensors" >"$T/r3.out" 2>&1 ||
  { cat "$T/r3.out"; fail "resume at 3 ranks"; }
compare "$T/one_adamw" "$T/r3" "ZeRO-1 at 2 ranks, resumed by ZeRO-1 at 3"
# Muon's state resumes too: 2 ranks for 10 steps, then 1 rank
$RUN 2 $bin $small --optim muon --max-steps 10 --out-dir "$T/m" >"$T/m.out" 2>&1 || { cat "$T/m.out"; fail "Muon first half"; }
OMP_NUM_THREADS=1 $bin $small --optim muon --threads 1 --out-dir "$T/m" --resume "$T/m/last.safetensors" >/dev/null 2>"$T/m1.log" ||
  { cat "$T/m1.log"; fail "Muon resume at 1 rank"; }
compare "$T/one_muon" "$T/m" "Muon at 2 ranks, resumed at 1"
# ranks started with different flags stop with a message (never hang)
out=$(timeout 120 $RUN 1 $bin $small --out-dir "$T/d" --lr 1e-3 : -np 1 $bin $small --out-dir "$T/d" --lr 2e-3 2>&1)
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "different flags: exit status $rc"
echo "$out" | grep -m1 "different flags" || fail "different flags: no message"
echo "test_train_gpt: PASS"
