#!/bin/sh
# train_diffusion end to end on the tiny config: train -> checkpoints ->
# --generate finds and loads them; exact resume (N steps straight equal k +
# --resume + N-k, losses and checkpoint bit for bit, CE and ELBO); generation
# reproducible with --seed; bad input refused with a message, a non-zero
# exit and nothing overwritten.
set -eu
build=$1 src=$2
bin=$build/train_diffusion
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--data $src/data/tinyshakespeare.txt --batch-size 8 --iters 20 --eval-interval 10 --eval-iters 2
       --warmup 5 --decay-steps 20 --threads 2"
fail() { echo "FAIL: $*"; exit 1; }

# train, then generate from the directory training wrote
$bin $small --out-dir "$tmp/a" >"$tmp/a.out" 2>"$tmp/a.log" || { cat "$tmp/a.log"; fail "training"; }
for f in best.safetensors last.safetensors metrics.jsonl loss.png; do
  [ -s "$tmp/a/$f" ] || fail "no $f"
done
grep -q '"val_bpc"' "$tmp/a/metrics.jsonl" || fail "no val_bpc in metrics.jsonl"
grep -q "^final: step 20" "$tmp/a.out" || fail "no final line: $(cat "$tmp/a.out")"
$bin --generate "$tmp/a" --seed 7 --blocks 2 --prompt "ROMEO:" >"$tmp/g1.txt" 2>"$tmp/g1.log" ||
  { cat "$tmp/g1.log"; fail "--generate"; }
head -c 6 "$tmp/g1.txt" | grep -q '^ROMEO:' || fail "the sample does not start with the prompt"
grep -q 'step .*/.* masked 0' "$tmp/g1.log" || fail "no progress lines: $(head -3 "$tmp/g1.log")"
grep -q "$(printf '\033')" "$tmp/g1.txt" && fail "escape codes in plain output"
$bin --generate "$tmp/a" --seed 7 --blocks 2 --prompt "ROMEO:" >"$tmp/g2.txt" 2>/dev/null
cmp -s "$tmp/g1.txt" "$tmp/g2.txt" || fail "one seed gave two texts"
$bin --generate --checkpoint "$tmp/a/last.safetensors" --commit threshold --tau 0.5 --seed 1 \
  >"$tmp/g3.txt" 2>/dev/null || fail "--commit threshold"
[ "$(wc -c <"$tmp/g3.txt")" -ge 64 ] || fail "short threshold sample"
echo "ok: trained, checkpointed, generated ($(wc -c <"$tmp/g1.txt") bytes), reproducible with --seed"

# exact resume, for both losses
for loss in ce elbo; do
  $bin $small --loss $loss --out-dir "$tmp/r1" --no-plot >/dev/null 2>&1
  $bin $small --loss $loss --out-dir "$tmp/r2" --no-plot --max-steps 9 >/dev/null 2>&1
  $bin $small --loss $loss --out-dir "$tmp/r2" --no-plot --resume "$tmp/r2/last.safetensors" >/dev/null 2>&1
  grep '"loss"' "$tmp/r1/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/r1.loss"
  grep '"loss"' "$tmp/r2/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/r2.loss"
  cmp -s "$tmp/r1.loss" "$tmp/r2.loss" || { diff "$tmp/r1.loss" "$tmp/r2.loss" | head; fail "$loss: resumed losses differ"; }
  [ "$(wc -l <"$tmp/r1.loss")" -eq 20 ] || fail "expected 20 loss lines"
  # evaluations too: the first train_loss after the resume averages steps from before the stop
  grep '"train_loss"' "$tmp/r1/metrics.jsonl" >"$tmp/r1.eval"
  grep '"train_loss"' "$tmp/r2/metrics.jsonl" >"$tmp/r2.eval"
  [ -s "$tmp/r1.eval" ] || fail "no evaluation lines"
  cmp -s "$tmp/r1.eval" "$tmp/r2.eval" || { diff "$tmp/r1.eval" "$tmp/r2.eval"; fail "$loss: resumed evaluations differ"; }
  cmp "$tmp/r1/last.safetensors" "$tmp/r2/last.safetensors" || fail "$loss: final checkpoints differ"
  echo "ok: --loss $loss: 20 steps straight == 9 + resume + 11, bit for bit"
  rm -rf "$tmp/r1" "$tmp/r2"
done

# bad input: a message naming the flag or file, exit non-zero, nothing overwritten
cp "$tmp/a/last.safetensors" "$tmp/keep.safetensors"
expect_fail() { # pattern, args...
  pat=$1; shift
  if "$bin" "$@" >"$tmp/e.out" 2>"$tmp/e.log"; then fail "'$*' was accepted"; fi
  grep -q -- "$pat" "$tmp/e.log" || { cat "$tmp/e.log"; fail "'$*': no message with '$pat'"; }
  echo "ok: '$*' -> $(head -n 1 "$tmp/e.log")"
}
: >"$tmp/empty.txt"
printf 'caf\303\251 au lait %0400d\n' 0 >"$tmp/utf8.txt"
expect_fail "empty" $small --data "$tmp/empty.txt" --out-dir "$tmp/e"
expect_fail "not ASCII" $small --data "$tmp/utf8.txt" --out-dir "$tmp/e"
expect_fail "cannot open" $small --data "$tmp/missing.txt" --out-dir "$tmp/e"
expect_fail "unknown flag" --bogus 1
expect_fail "not an integer" --iters x
expect_fail "--config" --config huge
expect_fail "--loss" --loss mse
expect_fail "--k" --generate "$tmp/a" --k 0
expect_fail "--tau" --generate "$tmp/a" --commit threshold --tau 1.5
expect_fail "--tau" --generate "$tmp/a" --tau 0
expect_fail "--commit" --generate "$tmp/a" --commit all
expect_fail "longer than the sequence" --generate "$tmp/a" --prompt "$(printf '%0100d' 0)"
expect_fail "no checkpoint" --generate "$tmp/nothing"
expect_fail "another config" --generate "$tmp/a" --config small
expect_fail "different config" $small --n-embd 32 --out-dir "$tmp/a" --resume "$tmp/a/last.safetensors"
expect_fail "different config" $small --loss elbo --out-dir "$tmp/a" --resume "$tmp/a/last.safetensors"
head -c 1000 "$tmp/keep.safetensors" >"$tmp/trunc.safetensors"
expect_fail "trunc.safetensors" --generate "$tmp/trunc.safetensors"
[ ! -e "$tmp/e" ] || fail "a refused run created its out-dir"
cmp -s "$tmp/a/last.safetensors" "$tmp/keep.safetensors" || fail "a refused run changed the checkpoint"
echo "ok: all checks passed"
