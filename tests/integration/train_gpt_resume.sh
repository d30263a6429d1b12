#!/bin/sh
# Exact resume: N steps straight, and k steps + --resume + N-k steps, give
# identical losses at every step and byte-identical final checkpoints.
# Also: bad flags, a missing data file, and a checkpoint from another config
# are refused with a message and a non-zero exit, leaving files untouched.
set -eu
build=$1 src=$2
bin=$build/train_gpt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--data $src/data/tinyshakespeare.txt --n-layer 2 --n-head 2 --n-embd 32 --block-size 16 --batch-size 4
       --iters 30 --eval-interval 10 --eval-iters 2 --sample-chars 0 --no-plot --warmup 5 --decay-steps 25 --threads 2"
$bin $small --out-dir "$tmp/a" >/dev/null 2>"$tmp/a.log"
$bin $small --out-dir "$tmp/b" --max-steps 13 >/dev/null 2>"$tmp/b1.log"
# a --max-steps stop before the first evaluation (step 10) still reports a validation loss
$bin $small --out-dir "$tmp/f" --max-steps 5 >"$tmp/f.out" 2>"$tmp/f.log"
grep -q "5 steps in .* val loss [0-9]" "$tmp/f.log" || { echo "FAIL: summary after --max-steps 5:"; cat "$tmp/f.log"; exit 1; }
$bin $small --out-dir "$tmp/b" --resume "$tmp/b/last.safetensors" >/dev/null 2>"$tmp/b2.log"
grep '"loss"' "$tmp/a/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/a.loss"
grep '"loss"' "$tmp/b/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/b.loss"
if ! cmp -s "$tmp/a.loss" "$tmp/b.loss"; then
  echo "FAIL: losses differ between the straight and the resumed run"; diff "$tmp/a.loss" "$tmp/b.loss" | head; exit 1
fi
[ "$(wc -l <"$tmp/a.loss")" -eq 30 ] || { echo "FAIL: expected 30 loss lines"; exit 1; }
# the evaluations too: the train_loss after the resume averages the steps since the last
# evaluation, some of them before the stop (the window travels in the checkpoint)
grep '"train_loss"' "$tmp/a/metrics.jsonl" >"$tmp/a.eval"
grep '"train_loss"' "$tmp/b/metrics.jsonl" >"$tmp/b.eval"
[ "$(wc -l <"$tmp/a.eval")" -eq 3 ] || { echo "FAIL: expected 3 evaluation lines"; exit 1; }
if ! cmp -s "$tmp/a.eval" "$tmp/b.eval"; then
  echo "FAIL: evaluations differ between the straight and the resumed run"; diff "$tmp/a.eval" "$tmp/b.eval"; exit 1
fi
cmp "$tmp/a/last.safetensors" "$tmp/b/last.safetensors" || { echo "FAIL: final checkpoints differ"; exit 1; }
echo "ok: 30 steps straight == 13 + resume + 17, losses, evaluations and checkpoint bit for bit"
# resuming the finished run trains nothing: it says so and reports a finite validation loss
$bin $small --out-dir "$tmp/b" --resume "$tmp/b/last.safetensors" >"$tmp/b3.out" 2>"$tmp/b3.log"
grep -q "no steps to run (step 30 of 30), val loss [0-9]" "$tmp/b3.log" ||
  { echo "FAIL: no 'no steps to run' line with a val loss:"; cat "$tmp/b3.log"; exit 1; }
grep -q "^final: step 30 val_loss [0-9]" "$tmp/b3.out" || { echo "FAIL: final line:"; cat "$tmp/b3.out"; exit 1; }

# a checkpoint from a different config is refused and nothing is written
cp "$tmp/a/last.safetensors" "$tmp/keep.safetensors"
if $bin $small --n-embd 64 --out-dir "$tmp/a" --resume "$tmp/a/last.safetensors" >/dev/null 2>"$tmp/c.log"; then
  echo "FAIL: resuming with another config succeeded"; exit 1
fi
grep -q "different config" "$tmp/c.log" || { echo "FAIL: no 'different config' message:"; cat "$tmp/c.log"; exit 1; }
cmp -s "$tmp/a/last.safetensors" "$tmp/keep.safetensors" || { echo "FAIL: checkpoint changed"; exit 1; }
# a truncated checkpoint
head -c 1000 "$tmp/keep.safetensors" >"$tmp/trunc.safetensors"
if $bin $small --out-dir "$tmp/d" --resume "$tmp/trunc.safetensors" >/dev/null 2>"$tmp/d.log"; then
  echo "FAIL: a truncated checkpoint was accepted"; exit 1
fi
grep -q "trunc.safetensors" "$tmp/d.log" || { echo "FAIL: the error does not name the file:"; cat "$tmp/d.log"; exit 1; }
# bad flags and inputs
for args in "--bogus 1" "--iters x" "--n-head 3" "--data $tmp/missing.txt" "--device tpu"; do
  if $bin $small $args --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: '$args' was accepted"; exit 1; fi
  [ -s "$tmp/e.log" ] || { echo "FAIL: '$args' gave no message"; exit 1; }
  echo "ok: '$args' -> $(head -n 1 "$tmp/e.log")"
done
for case in "--iters x|--iters x: not an integer" "--grad-accum 0|--grad-accum 0: must be in" \
  "--zero 2|--zero 2: must be 0 or 1" "--lr inf|--lr inf: not a finite"; do
  args=${case%%|*} want=${case#*|}
  rc=0; $bin $args >/dev/null 2>"$tmp/e.log" || rc=$?
  [ "$rc" -eq 2 ] || { echo "FAIL: '$args' exited $rc, not 2"; cat "$tmp/e.log"; exit 1; }
  grep -qF -- "$want" "$tmp/e.log" || { echo "FAIL: '$args': no '$want' in:"; cat "$tmp/e.log"; exit 1; }
done
: >"$tmp/empty.txt"
if $bin $small --data "$tmp/empty.txt" --out-dir "$tmp/e" >/dev/null 2>"$tmp/e.log"; then echo "FAIL: empty data accepted"; exit 1; fi
grep -q "empty" "$tmp/e.log" || { echo "FAIL: no 'empty' message"; cat "$tmp/e.log"; exit 1; }
echo "ok: all checks passed"
