#!/bin/sh
# nanoproof end to end on the tiny config: train -> checkpoint + tokenizer
# -> --prove prints a checked proof tree -> --eval writes solve rates; exact
# resume (N steps straight equal k + --resume + N-k, bit for bit); bad input
# refused with a message, a non-zero exit and nothing overwritten.
set -eu
build=$1
bin=$build/nanoproof
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--train-sequents 400 --test-sequents 2 --batch-size 16 --iters 150 --eval-interval 75
       --eval-iters 2 --warmup 10 --decay-steps 150 --threads 2 --budgets 4 --value-rounds 0"
fail() { echo "FAIL: $*"; exit 1; }

$bin $small --out-dir "$tmp/a" >"$tmp/a.out" 2>"$tmp/a.log" || { cat "$tmp/a.log"; fail "training"; }
for f in best.safetensors last.safetensors tokenizer.bin metrics.jsonl loss.png eval.json; do
  [ -s "$tmp/a/$f" ] || fail "no $f"
done
grep -q '"val_value_loss"' "$tmp/a/metrics.jsonl" || fail "no val_value_loss in metrics.jsonl"
grep -q "^final: step 150" "$tmp/a.out" || fail "no final line: $(cat "$tmp/a.out")"
grep -q "^4 *search" "$tmp/a.out" || fail "no solve-rate table: $(cat "$tmp/a.out")"
grep -q '"method":"sampling"' "$tmp/a/eval.json" || fail "eval.json: $(cat "$tmp/a/eval.json")"
echo "ok: trained, checkpointed, evaluated"

# prove: the tree is printed and every line is a goal with its step
$bin --prove "a & b |- b & a" "$tmp/a" --budget 64 --samples 8 >"$tmp/p.out" 2>"$tmp/p.log" ||
  { cat "$tmp/p.out" "$tmp/p.log"; fail "--prove did not prove a & b |- b & a"; }
head -n 1 "$tmp/p.out" | grep -q "^proved a & b |- b & a in" || fail "no proved line: $(cat "$tmp/p.out")"
grep -q '\[andL 0\]' "$tmp/p.out" || grep -q '\[andR 0\]' "$tmp/p.out" || fail "no step: $(cat "$tmp/p.out")"
grep -q '\[ax\]$' "$tmp/p.out" || fail "no axiom leaf: $(cat "$tmp/p.out")"
echo "ok: --prove: $(head -n 1 "$tmp/p.out")"
# an unprovable sequent: not proved, exit 1, and said to be refuted
if $bin --prove "a |- b" "$tmp/a" --budget 4 >"$tmp/u.out" 2>/dev/null; then fail "proved a |- b"; fi
grep -q "not provable" "$tmp/u.out" || fail "no refutation note: $(cat "$tmp/u.out")"
echo "ok: a |- b not proved ($(cat "$tmp/u.out"))"

# exact resume
args="--train-sequents 200 --test-sequents 1 --batch-size 8 --iters 20 --eval-interval 10
      --eval-iters 1 --warmup 2 --decay-steps 20 --threads 2 --no-plot --no-final-eval
      --value-rounds 0"
$bin $args --out-dir "$tmp/r1" >/dev/null 2>&1
$bin $args --out-dir "$tmp/r2" --max-steps 9 >/dev/null 2>&1
$bin $args --out-dir "$tmp/r2" --resume "$tmp/r2/last.safetensors" >/dev/null 2>&1
grep '"loss"' "$tmp/r1/metrics.jsonl" >"$tmp/r1.loss"
grep '"loss"' "$tmp/r2/metrics.jsonl" >"$tmp/r2.loss"
cmp -s "$tmp/r1.loss" "$tmp/r2.loss" || { diff "$tmp/r1.loss" "$tmp/r2.loss" | head; fail "resumed losses differ"; }
[ "$(wc -l <"$tmp/r1.loss")" -eq 20 ] || fail "expected 20 loss lines"
cmp "$tmp/r1/last.safetensors" "$tmp/r2/last.safetensors" || fail "final checkpoints differ"
echo "ok: 20 steps straight == 9 + resume + 11, bit for bit"

# value rounds: each round searches fresh sequents and labels what it expanded; training on the
# labels moves the value loss; resuming at a round end is exact
vargs="$args --value-rounds 2 --value-steps 4 --value-sequents 4 --value-budget 4"
$bin $vargs --out-dir "$tmp/v1" >/dev/null 2>"$tmp/v1.log" || { cat "$tmp/v1.log"; fail "value rounds"; }
[ "$(grep -c '"round_labels"' "$tmp/v1/metrics.jsonl")" -eq 2 ] || fail "expected 2 value rounds"
grep '"round_labels"' "$tmp/v1/metrics.jsonl" | grep -vq '"round_labels":0,' ||
  fail "a round produced no labels: $(grep round_labels "$tmp/v1/metrics.jsonl")"
[ "$(grep -c '"round_value_loss"' "$tmp/v1/metrics.jsonl")" -eq 8 ] || fail "expected 8 value steps"
v20=$(grep '"step":20,"val_loss"' "$tmp/v1/metrics.jsonl" | sed 's/.*"val_value_loss":\([0-9.]*\).*/\1/')
v28=$(grep '"step":28,"val_loss"' "$tmp/v1/metrics.jsonl" | sed 's/.*"val_value_loss":\([0-9.]*\).*/\1/')
[ -n "$v20" ] && [ -n "$v28" ] && [ "$v20" != "$v28" ] || fail "value rounds left the value loss at $v20 -> $v28"
$bin $vargs --out-dir "$tmp/v2" --max-steps 24 >/dev/null 2>&1
$bin $vargs --out-dir "$tmp/v2" --resume "$tmp/v2/last.safetensors" >/dev/null 2>&1
cmp -s "$tmp/v1/metrics.jsonl" "$tmp/v2/metrics.jsonl" || {
  diff "$tmp/v1/metrics.jsonl" "$tmp/v2/metrics.jsonl" | head; fail "resumed value rounds differ"; }
cmp "$tmp/v1/last.safetensors" "$tmp/v2/last.safetensors" || fail "value-round checkpoints differ"
echo "ok: 2 value rounds (val value loss $v20 -> $v28); 24 steps + resume == 28 straight, bit for bit"

# bad input
cp "$tmp/a/last.safetensors" "$tmp/keep.safetensors"
expect_fail() { # pattern, args...
  pat=$1; shift
  if "$bin" "$@" >"$tmp/e.out" 2>"$tmp/e.log"; then fail "'$*' was accepted"; fi
  grep -q -- "$pat" "$tmp/e.log" || { cat "$tmp/e.log"; fail "'$*': no message with '$pat'"; }
  echo "ok: '$*' -> $(head -n 1 "$tmp/e.log")"
}
expect_fail "position 4: expected a formula" --prove "a & |- b" "$tmp/a"
expect_fail "position 2: expected ',' or '|-'" --prove "a b |- c" "$tmp/a"
expect_fail "unknown flag" --bogus 1
expect_fail "not an integer" --iters x
expect_fail "--config" --config huge
expect_fail "--budgets" --eval "$tmp/a" --budgets 4,x
expect_fail "no trained model" --prove "a |- a" "$tmp/nothing"
expect_fail "another config: its n_layer is 2, the run asks 4" --prove "a |- a" "$tmp/a" --config small
expect_fail "different config" $small --train-sequents 401 --out-dir "$tmp/a" \
  --resume "$tmp/a/last.safetensors"
head -c 1000 "$tmp/keep.safetensors" >"$tmp/a/best.safetensors"
expect_fail "best.safetensors" --prove "a |- a" "$tmp/a"
cmp -s "$tmp/a/last.safetensors" "$tmp/keep.safetensors" || fail "a refused run changed the checkpoint"
echo "ok: all checks passed"
