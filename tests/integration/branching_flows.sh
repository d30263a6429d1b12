#!/bin/sh
# branching_flows end to end, in seconds: each task trains a few steps,
# writes checkpoints, metrics and plots, samples and prints its length
# statistics; exact resume (N steps straight equal k + --resume + N - k,
# losses and checkpoint bit for bit); one seed gives the same samples on 1
# and 2 threads; bad input refused with a message naming the flag, a
# non-zero exit and nothing written.
set -eu
build=$1
bin=$build/branching_flows
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--iters 12 --eval-interval 6 --eval-iters 1 --batch-size 8 --n-layer 1 --n-embd 32
       --samples 8 --sample-steps 20 --warmup 2"
fail() { echo "FAIL: $*"; exit 1; }

for task in continuous discrete mixed; do
  $bin --task $task $small --out-dir "$tmp/$task" >"$tmp/$task.out" 2>"$tmp/$task.log" ||
    { cat "$tmp/$task.log"; fail "$task: training"; }
  for f in best.safetensors last.safetensors metrics.jsonl loss.png flow.png samples.png lengths.png; do
    [ -s "$tmp/$task/$f" ] || fail "$task: no $f"
  done
  grep -q '"val_loss"' "$tmp/$task/metrics.jsonl" || fail "$task: no val_loss in metrics.jsonl"
  grep -q '^final: step 12' "$tmp/$task.out" || fail "$task: no final line"
  grep -q '^lengths: data mean .* | samples mean' "$tmp/$task.out" || fail "$task: no length statistics"
  echo "ok: $task: $(grep '^lengths' "$tmp/$task.out")"
done
grep -q '^strings that count up' "$tmp/discrete.out" || fail "discrete: no score"
grep -q '^labels matching their quadrant' "$tmp/mixed.out" || fail "mixed: no score"
grep -q '^points: mean |radius - 1|' "$tmp/continuous.out" || fail "continuous: no score"

# exact resume
run() { $bin --task mixed $small --no-plot --samples 0 "$@" >/dev/null 2>&1; }
run --out-dir "$tmp/r1"
run --out-dir "$tmp/r2" --max-steps 5
run --out-dir "$tmp/r2" --resume "$tmp/r2/last.safetensors"
grep '"loss"' "$tmp/r1/metrics.jsonl" >"$tmp/r1.loss"
grep '"loss"' "$tmp/r2/metrics.jsonl" >"$tmp/r2.loss"
cmp -s "$tmp/r1.loss" "$tmp/r2.loss" || { diff "$tmp/r1.loss" "$tmp/r2.loss" | head; fail "resumed losses differ"; }
[ "$(wc -l <"$tmp/r1.loss")" -eq 12 ] || fail "expected 12 loss lines"
cmp "$tmp/r1/last.safetensors" "$tmp/r2/last.safetensors" || fail "final checkpoints differ"
echo "ok: 12 steps straight == 5 + resume + 7, bit for bit"

# sampling from the checkpoint (iters reached), the same on 1 and 2 threads
$bin --task mixed $small --no-plot --resume "$tmp/r1/last.safetensors" --out-dir "$tmp/r1" --threads 1 \
  | grep -v '^final' >"$tmp/s1.txt"
$bin --task mixed $small --no-plot --resume "$tmp/r1/last.safetensors" --out-dir "$tmp/r1" --threads 2 \
  | grep -v '^final' >"$tmp/s2.txt"
grep -q '^lengths' "$tmp/s1.txt" || fail "no samples from the checkpoint"
sed 's/ in [0-9.]* s)/)/' "$tmp/s1.txt" >"$tmp/s1n.txt"
sed 's/ in [0-9.]* s)/)/' "$tmp/s2.txt" >"$tmp/s2n.txt"
cmp -s "$tmp/s1n.txt" "$tmp/s2n.txt" || { diff "$tmp/s1n.txt" "$tmp/s2n.txt"; fail "1 and 2 threads sampled differently"; }
echo "ok: the same samples on 1 and 2 threads"

# bad input
cp "$tmp/r1/last.safetensors" "$tmp/keep.safetensors"
expect_fail() { # pattern, args...
  pat=$1; shift
  if "$bin" "$@" >"$tmp/e.out" 2>"$tmp/e.log"; then fail "'$*' was accepted"; fi
  grep -q -- "$pat" "$tmp/e.log" || { cat "$tmp/e.log"; fail "'$*': no message with '$pat'"; }
  echo "ok: '$*' -> $(head -n 1 "$tmp/e.log")"
}
expect_fail "--task must be" --task images --out-dir "$tmp/e"
expect_fail "unknown flag" --bogus 1 --out-dir "$tmp/e"
expect_fail "not an integer" --iters x --out-dir "$tmp/e"
expect_fail "max_len must be at least the target's length" --data-max 40 --max-len 32 --out-dir "$tmp/e"
expect_fail "group minimum larger than the group" --group-min 5 --data-min 3 --out-dir "$tmp/e"
expect_fail "--branch-time must be" --branch-time beta:0,2 --out-dir "$tmp/e"
expect_fail "--policy must be" --policy greedy --out-dir "$tmp/e"
expect_fail "--preset must be" --preset tpu --out-dir "$tmp/e"
expect_fail "different flow" --task mixed $small --deletion-pad 2 --out-dir "$tmp/r1" --resume "$tmp/r1/last.safetensors"
expect_fail "different model" --task mixed $small --n-embd 64 --out-dir "$tmp/r1" --resume "$tmp/r1/last.safetensors"
expect_fail "different task" --task discrete $small --out-dir "$tmp/r1" --resume "$tmp/r1/last.safetensors"
[ ! -e "$tmp/e" ] || fail "a refused run created its out-dir"
cmp -s "$tmp/r1/last.safetensors" "$tmp/keep.safetensors" || fail "a refused run changed the checkpoint"
echo "ok: all checks passed"
