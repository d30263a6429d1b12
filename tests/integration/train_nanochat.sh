#!/bin/sh
# train_nanochat --preset debug on Shakespeare in GPT-2 tokens (tyr_prepare
# with the GPT-2 rank file, a BOS per paragraph), made small with flags so
# that it runs in seconds: the loss falls; a run stopped half-way and
# resumed from DIR/latest gives the straight run's losses bit for bit; bad
# input (shards of another format, tokens beyond the vocabulary, a val set
# smaller than one batch, a batch that does not divide, a checkpoint of
# another model) is refused with a message naming the file or flag, a
# non-zero exit, and nothing written.
#   train_nanochat.sh BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
bin=$build/train_nanochat
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$build/tyr_prepare" -q --tiktoken "$src/tests/data/tokenizer/gpt2.tiktoken.zst" --pattern gpt2 \
  --bos --docs paragraph -o "$tmp/shk" "$src/data/tinyshakespeare.txt" >/dev/null || fail "tyr_prepare"
small="--preset debug --data $tmp/shk/tinyshakespeare_train_000000.bin
       --val $tmp/shk/tinyshakespeare_val_000000.bin --n-embd 64 --n-head 2 --head-dim 32
       --seq-len 64 --micro-batch 2 --batch-size 4 --batch-start 2 --batch-warmup 4
       --iterations 24 --val-every 12 --val-tokens 256 --save-every 0 --window-start 16
       --window-end 64 --window-block 16 --momentum-warmup 8 --threads 2 --log-every 6 --no-plot"
losses() { grep '"loss"' "$1/metrics.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/'; }

# the loss falls
$bin $small --checkpoint-dir "$tmp/a" >"$tmp/a.out" 2>"$tmp/a.log" || { cat "$tmp/a.log"; fail "straight run"; }
grep -q "^step 24/24 | loss .* | lr .* | batch 4 | seq 64 | tok/s .* | ms .* | MFU .*%" "$tmp/a.out" ||
  { cat "$tmp/a.out"; fail "no log line"; }
head -n 1 "$tmp/a/metrics.jsonl" | grep -q '"batch":2,' || fail "the batch schedule did not start at 2"
grep '"step":24,' "$tmp/a/metrics.jsonl" | grep -q '"batch":4,"seq":64,"window":64,' ||
  fail "the batch and window schedules did not end at 4 and 64"
[ -f "$tmp/a/latest" ] || fail "no checkpoint $tmp/a/latest"
losses "$tmp/a" >"$tmp/a.loss"
[ "$(wc -l <"$tmp/a.loss")" -eq 24 ] || fail "expected 24 loss lines"
first=$(head -n 3 "$tmp/a.loss" | awk '{s += $1} END {print s / NR}')
last=$(tail -n 3 "$tmp/a.loss" | awk '{s += $1} END {print s / NR}')
awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < a - 2)}' || fail "the loss did not fall: $first -> $last"
grep -q '"val_loss"' "$tmp/a/metrics.jsonl" || fail "no validation line"
echo "ok: loss $first -> $last over 24 steps"

# stopped at 10 and resumed from DIR/latest: the same losses
$bin $small --checkpoint-dir "$tmp/b" --max-steps 10 >/dev/null 2>"$tmp/b1.log" || { cat "$tmp/b1.log"; fail "first half"; }
$bin $small --checkpoint-dir "$tmp/b" >/dev/null 2>"$tmp/b2.log" || { cat "$tmp/b2.log"; fail "second half"; }
grep -q "resumed from $tmp/b/latest at step 10" "$tmp/b2.log" || { cat "$tmp/b2.log"; fail "no auto-resume"; }
losses "$tmp/b" >"$tmp/b.loss"
cmp -s "$tmp/a.loss" "$tmp/b.loss" || { diff "$tmp/a.loss" "$tmp/b.loss" | head; fail "resumed losses differ"; }
cmp -s "$tmp/a/latest" "$tmp/b/latest" || fail "final checkpoints differ"
echo "ok: 24 steps straight == 10 + auto-resume + 14, losses and checkpoint bit for bit"

# from a clean checkout, --preset debug makes its own data (out/nanochat_shk)
mkdir -p "$tmp/clean/data" "$tmp/clean/tests/data/tokenizer"
cp "$src/data/tinyshakespeare.txt" "$tmp/clean/data/"
cp "$src/tests/data/tokenizer/gpt2.tiktoken.zst" "$tmp/clean/tests/data/tokenizer/"
(cd "$tmp/clean" && $bin --preset debug --iterations 2 --seq-len 64 --micro-batch 1 --batch-size 1 \
  --batch-start 1 --val-tokens 64 --n-embd 64 --head-dim 32 --threads 2 >"$tmp/clean.out" 2>"$tmp/clean.log") ||
  { cat "$tmp/clean.log"; fail "--preset debug from a clean checkout"; }
grep -q "wrote out/nanochat_shk: 7222 documents" "$tmp/clean.log" || { cat "$tmp/clean.log"; fail "no debug data"; }
grep -q "^final: step 2 " "$tmp/clean.out" || fail "--preset debug did not finish"
echo "ok: --preset debug from a clean checkout"

# bad input: a message naming the file or flag, exit != 0, nothing written
expect_fail() { # what, message, flags...
  what=$1 msg=$2
  shift 2
  if $bin "$@" >"$tmp/f.out" 2>"$tmp/f.log"; then fail "$what: succeeded"; fi
  grep -qF -- "$msg" "$tmp/f.log" || { cat "$tmp/f.log"; fail "$what: no '$msg'"; }
  [ ! -e "$tmp/none" ] || fail "$what: $tmp/none was written"
  echo "ok: $what: $(grep -F -- "$msg" "$tmp/f.log" | head -n 1)"
}
printf 'not a shard at all, just some text\n' >"$tmp/text.bin"
expect_fail "shard of another format" "text.bin" $small --data "$tmp/text.bin" --checkpoint-dir "$tmp/none"
expect_fail "tokens beyond the vocabulary" "beyond the model's vocabulary (--vocab 1000)" \
  $small --vocab 1000 --checkpoint-dir "$tmp/none"
expect_fail "val smaller than one batch" "--val $tmp/shk/tinyshakespeare_val_000000.bin" \
  $small --val-tokens 100000000 --checkpoint-dir "$tmp/none"
expect_fail "batch that does not divide" "--batch-size 5 and --batch-start 2 must be multiples" \
  $small --batch-size 5 --checkpoint-dir "$tmp/none"
expect_fail "unknown preset" "--preset d13: unknown preset" $small --preset d13 --checkpoint-dir "$tmp/none"
cp "$tmp/a/latest" "$tmp/keep"
expect_fail "checkpoint of another model" "$tmp/a/latest: the checkpoint holds another model" \
  $small --n-embd 128 --checkpoint-dir "$tmp/a"
cmp -s "$tmp/a/latest" "$tmp/keep" || fail "the checkpoint was changed"
losses "$tmp/a" | cmp -s - "$tmp/a.loss" || fail "metrics.jsonl was changed"
echo "ok: bad input refused"
