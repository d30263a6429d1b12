#!/bin/sh
# train_gpt with bad input: numeric flags out of range refused before anything
# is allocated or written (the message names the flag and shows the value),
# config errors in terms of flags, a prompt outside the vocabulary refused
# before training, a diverging validation loss stopping the run without
# overwriting the last checkpoint, metrics.jsonl cut back to the checkpoint's
# step on resume, another vocabulary refused on resume, and temporary files of
# a killed save removed at the next start.
set -eu
build=$1 src=$2
bin=$build/train_gpt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
small="--data $src/data/tinyshakespeare.txt --n-layer 2 --n-head 2 --n-embd 32 --block-size 16 --batch-size 4
       --eval-iters 2 --sample-chars 0 --no-plot --threads 2"

refused() { # expected substring, then the flags
  want=$1
  shift
  if $bin $small --iters 5 "$@" --out-dir "$tmp/never" >/dev/null 2>"$tmp/e.log"; then
    echo "FAIL: '$*' was accepted"; exit 1
  fi
  grep -q -F -- "$want" "$tmp/e.log" || { echo "FAIL: '$*': no '$want' in:"; cat "$tmp/e.log"; exit 1; }
  [ ! -e "$tmp/never" ] || { echo "FAIL: '$*' created the output directory"; exit 1; }
  echo "ok: '$*' -> $(head -n 1 "$tmp/e.log")"
}
refused "--iters 99999999999999" --iters 99999999999999
refused "--batch-size 1000000000" --batch-size 1000000000
refused "--batch-size 0" --batch-size 0
refused "--log-interval 0" --log-interval 0
refused "--threads -1" --threads -1
refused "--warmup -5" --warmup -5
refused "--clip -1" --clip -1
refused "--max-steps -2" --max-steps -2
refused "--eval-iters 0" --eval-iters 0
refused "--top-p 1.5" --top-p 1.5
refused "--n-head 3: must divide --n-embd 32" --n-head 3
refused "--n-kv-head 3: must divide --n-head 2" --n-kv-head 3
refused "--block-size 99999999999" --block-size 99999999999
refused "'~' (byte 0x7e, position 5) is not in the vocabulary" --sample-chars 10 --prompt "ROMEO~"

# a loss that becomes NaN (f16 overflow at a huge learning rate) stops the
# run; last.safetensors stays at the last good evaluation
diverge="--iters 80 --eval-interval 2 --lr 10 --min-lr 0 --warmup 50 --clip 0 --compute-dtype f16"
if $bin $small $diverge --out-dir "$tmp/nan" >/dev/null 2>"$tmp/nan.log"; then
  echo "FAIL: a NaN loss did not stop training"; exit 1
fi
grep -q "loss is -*nan at step [0-9]*; stopping" "$tmp/nan.log" ||
  { echo "FAIL: no NaN message:"; cat "$tmp/nan.log"; exit 1; }
if grep -qi "nan" "$tmp/nan/metrics.jsonl"; then echo "FAIL: NaN in metrics.jsonl"; exit 1; fi
# the checkpoint's step (its "tyr.step" metadata) is the last evaluation
# with finite losses
good=$(grep -o "^step [0-9]*: train loss [0-9.]*, val loss [0-9.]*" "$tmp/nan.log" | tail -1 |
  sed 's/^step \([0-9]*\):.*/\1/')
[ -n "$good" ] || { echo "FAIL: no finite evaluation before the NaN:"; cat "$tmp/nan.log"; exit 1; }
grep -a -o '"tyr.step":"[0-9]*"' "$tmp/nan/last.safetensors" | grep -q "\"$good\"" ||
  { echo "FAIL: last.safetensors is not the step-$good checkpoint"; exit 1; }
echo "ok: a NaN loss stopped the run, last.safetensors kept at step $good"

# a killed run: lines past the checkpoint and a torn last line in
# metrics.jsonl, and a temporary file of an unfinished save
run="--iters 30 --eval-interval 10 --warmup 5 --decay-steps 25"
$bin $small $run --out-dir "$tmp/a" >/dev/null 2>&1
$bin $small $run --out-dir "$tmp/b" --max-steps 13 >/dev/null 2>&1
for s in 14 15 16; do echo "{\"step\":$s,\"loss\":9.9,\"lr\":0,\"tok_s\":1,\"live_tensors\":0}" >>"$tmp/b/metrics.jsonl"; done
printf '{"step":17,"lo' >>"$tmp/b/metrics.jsonl"
sh -c 'exit 0' & dead=$!
wait $dead
echo partial >"$tmp/b/last.safetensors.tmp.$dead.0"
$bin $small $run --out-dir "$tmp/b" --resume "$tmp/b/last.safetensors" >/dev/null 2>&1
[ ! -e "$tmp/b/last.safetensors.tmp.$dead.0" ] || { echo "FAIL: a stale temporary file was left"; exit 1; }
grep '"loss"' "$tmp/a/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/a.loss"
grep '"loss"' "$tmp/b/metrics.jsonl" | sed 's/,"tok_s".*//' >"$tmp/b.loss"
cmp -s "$tmp/a.loss" "$tmp/b.loss" || { echo "FAIL: metrics.jsonl after resume:"; diff "$tmp/a.loss" "$tmp/b.loss" | head; exit 1; }
if grep -v '}$' "$tmp/b/metrics.jsonl" | grep -q .; then echo "FAIL: a torn line remains"; exit 1; fi
echo "ok: metrics.jsonl cut back to step 13 on resume (no duplicated or torn lines); stale temporary removed"

# the same shapes with another vocabulary: refused on resume
tr 'a' '@' <"$src/data/tinyshakespeare.txt" >"$tmp/other.txt"
if $bin $small $run --data "$tmp/other.txt" --out-dir "$tmp/c" --resume "$tmp/a/last.safetensors" >/dev/null 2>"$tmp/v.log"; then
  echo "FAIL: another vocabulary was accepted on resume"; exit 1
fi
grep -q "vocabulary differs" "$tmp/v.log" || { echo "FAIL: no vocabulary message:"; cat "$tmp/v.log"; exit 1; }
echo "ok: another vocabulary refused on resume"
echo "ok: all checks passed"
