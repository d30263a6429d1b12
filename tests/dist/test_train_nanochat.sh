#!/bin/sh
# train_nanochat data parallel under mpirun: 2 ranks at --micro-batch 1
# give the losses of one process at --micro-batch 2 (the same windows, the
# same batch of 4 sequences per step: DDP averages the Muon matrices'
# gradients, Muon shares its orthogonalisations, Adam's gradients are
# reduce-scattered into the ranks' shards of its moments); each rank holds
# half of Adam's state; only rank 0 writes; a checkpoint written at 2 ranks
# resumes at 1, one written at 1 resumes at 2, and both end where the
# straight run ends.
#   test_train_nanochat.sh BUILD_DIR SOURCE_DIR
set -u
B=$1
S=$2
RUN="sh $S/tests/dist/run.sh"
command -v mpirun >/dev/null 2>&1 || { echo "SKIP: mpirun not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$B/tyr_prepare" -q --tiktoken "$S/tests/data/tokenizer/gpt2.tiktoken.zst" --pattern gpt2 \
  --bos --docs paragraph -o "$T/shk" "$S/data/tinyshakespeare.txt" >/dev/null || fail "tyr_prepare"
bin=$B/train_nanochat
small="--preset debug --data $T/shk/tinyshakespeare_train_000000.bin
       --val $T/shk/tinyshakespeare_val_000000.bin --n-embd 64 --n-head 2 --head-dim 32
       --seq-len 64 --batch-size 4 --batch-start 4 --iterations 8 --val-every 4 --val-tokens 256
       --window-start 16 --window-end 64 --window-block 16 --momentum-warmup 4 --no-plot"
losses() { grep '"loss"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }
compare() {
  losses "$1" >"$T/l1"
  losses "$2" >"$T/l2"
  [ "$(wc -l <"$T/l1")" = "$(wc -l <"$T/l2")" ] || fail "$3: $(wc -l <"$T/l1") vs $(wc -l <"$T/l2") loss lines"
  d=$(paste "$T/l1" "$T/l2" | awk '{d = $1 - $2; if (d < 0) d = -d; r = d / $1; if (r > m) m = r} END {printf "%.2g", m}')
  echo "$3: $(wc -l <"$T/l1") steps, largest relative loss difference $d"
  awk -v d="$d" 'BEGIN {exit !(d <= 1e-4)}' || fail "$3: losses differ by $d"
}
OMP_NUM_THREADS=1 $bin $small --micro-batch 2 --threads 1 --checkpoint-dir "$T/one" >/dev/null 2>"$T/one.log" ||
  { cat "$T/one.log"; fail "one process"; }
$RUN 2 $bin $small --micro-batch 1 --checkpoint-dir "$T/two" >"$T/two.out" 2>&1 ||
  { cat "$T/two.out"; fail "2 ranks"; }
grep -q "2 ranks (mpi)" "$T/two.out" || { cat "$T/two.out"; fail "not 2 ranks over MPI"; }
[ "$(grep -c '^final:' "$T/two.out")" = 1 ] || fail "more than rank 0 reported"
compare "$T/one" "$T/two" "2 ranks x micro-batch 1 vs 1 rank x micro-batch 2"
# Adam's moments: sharded at 2 ranks, about half of the whole per rank
adam() { sed -n "s/.*Adam's moments \([0-9.]*\) MiB (\(.*\))/\1 \2/p" "$1"; }
a1=$(adam "$T/one.log")
a2=$(adam "$T/two.out")
echo "Adam's state per rank: 1 rank $a1, 2 ranks $a2"
case "$a1" in *" whole") ;; *) fail "1 rank: Adam's state is not whole ($a1)" ;; esac
case "$a2" in *"sharded over the ranks") ;; *) fail "2 ranks: Adam's state is not sharded ($a2)" ;; esac
echo "$a1 $a2" | awk '{r = $3 / $1; exit !(r > 0.49 && r < 0.51)}' ||
  fail "2 ranks hold $a2 MiB of Adam's state each, not half of $a1"
# 2 ranks for 4 steps, then 1 rank from DIR/latest
$RUN 2 $bin $small --micro-batch 1 --max-steps 4 --checkpoint-dir "$T/r" >"$T/r.out" 2>&1 ||
  { cat "$T/r.out"; fail "first half at 2 ranks"; }
OMP_NUM_THREADS=1 $bin $small --micro-batch 2 --threads 1 --checkpoint-dir "$T/r" >/dev/null 2>"$T/r1.log" ||
  { cat "$T/r1.log"; fail "resume at 1 rank"; }
compare "$T/one" "$T/r" "4 steps at 2 ranks + 4 resumed at 1 vs 8 at 1"
# 1 rank for 4 steps, then 2 ranks from DIR/latest
OMP_NUM_THREADS=1 $bin $small --micro-batch 2 --threads 1 --max-steps 4 --checkpoint-dir "$T/q" \
  >/dev/null 2>"$T/q1.log" || { cat "$T/q1.log"; fail "first half at 1 rank"; }
$RUN 2 $bin $small --micro-batch 1 --checkpoint-dir "$T/q" >"$T/q2.out" 2>&1 ||
  { cat "$T/q2.out"; fail "resume at 2 ranks"; }
grep -q "resumed from .* at step 4" "$T/q2.out" || { cat "$T/q2.out"; fail "2 ranks did not resume"; }
compare "$T/one" "$T/q" "4 steps at 1 rank + 4 resumed at 2 vs 8 at 1"
