#!/bin/sh
# tyr_prepare end to end: the character-level path on tinyshakespeare (the
# GPT example's data), the split options, several shards, headerless output,
# tiktoken / trained / saved tokenizers, Parquet input, and the error paths.
# Args: <build dir> <source dir>.
set -eu
BUILD=$1
SRC=$2
PREP=$BUILD/tyr_prepare
TXT=$SRC/data/tinyshakespeare.txt
TMP=$(mktemp -d /tmp/tyr-prepare-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# Little-endian int32 word i (0-based) of a file.
word() { od -A n -t d4 -j $(($2 * 4)) -N 4 "$1" | tr -d ' '; }
# uint16 token i of an llm.c shard.
token() { od -A n -t u2 -j $((1024 + $2 * 2)) -N 2 "$1" | tr -d ' '; }
size() { wc -c <"$1" | tr -d ' '; }
expect_fail() { # expect_fail "message" args...
  msg=$1
  shift
  if "$PREP" "$@" >"$TMP/out" 2>"$TMP/err"; then fail "tyr_prepare $* succeeded"; fi
  grep -qF -- "$msg" "$TMP/err" || fail "tyr_prepare $*: '$msg' not in: $(cat "$TMP/err")"
}

# ---- the character-level path ------------------------------------------------
"$PREP" --char -o "$TMP/char" "$TXT" >"$TMP/summary"
cat "$TMP/summary"
train=$TMP/char/tinyshakespeare_train_000000.bin
val=$TMP/char/tinyshakespeare_val_000000.bin
[ -f "$train" ] && [ -f "$val" ] || fail "shards missing: $(ls "$TMP/char")"
[ "$(ls "$TMP/char" | wc -l)" -eq 3 ] || fail "unexpected files: $(ls -a "$TMP/char")"
[ "$(word "$train" 0)" = 20240520 ] || fail "train magic $(word "$train" 0)"
[ "$(word "$train" 1)" = 1 ] || fail "train version"
# 1115394 characters; the first 90% (as nanoGPT splits) for training
[ "$(word "$train" 2)" = 1003854 ] || fail "train count $(word "$train" 2)"
[ "$(word "$val" 2)" = 111540 ] || fail "val count $(word "$val" 2)"
[ "$(word "$train" 3)" = 0 ] || fail "header word 3 is not zero"
[ "$(size "$train")" = $((1024 + 2 * 1003854)) ] || fail "train size"
[ "$(size "$val")" = $((1024 + 2 * 111540)) ] || fail "val size"
grep -q '"vocab_size": 65' "$TMP/char/meta.json" || fail "vocab size: $(head -5 "$TMP/char/meta.json")"
# "First Citizen:": F is id 18 of the sorted 65 (\n, space, !$&',-.3:;? then A..Z, a..z)
[ "$(token "$train" 0)" = 18 ] || fail "first token $(token "$train" 0)"
[ "$(token "$train" 1)" = $((39 + 8)) ] || fail "second token (i) $(token "$train" 1)"
[ "$(token "$train" 5)" = 1 ] || fail "space token"
grep -q "tokens: 1115394 (train 1003854 in 1 shard, val 111540 in 1 shard)" "$TMP/summary" ||
  fail "summary"
grep -q "bytes per token: 1.000" "$TMP/summary" || fail "bytes per token"
# val tokens are ids of the same vocabulary
[ "$(token "$val" 0)" -lt 65 ] || fail "val token out of range"

# ---- several shards, stale shards removed, a name, headerless ------------------
"$PREP" --char -q --shard-tokens 300000 --name tiny -o "$TMP/multi" "$TXT" >/dev/null
[ "$(ls "$TMP/multi"/tiny_train_*.bin | wc -l)" -eq 4 ] || fail "4 train shards: $(ls "$TMP/multi")"
[ "$(word "$TMP/multi/tiny_train_000003.bin" 2)" = $((1003854 - 900000)) ] || fail "last shard count"
"$PREP" --char -q --shard-tokens 600000 --name tiny -o "$TMP/multi" "$TXT" >/dev/null
[ "$(ls "$TMP/multi"/tiny_train_*.bin | wc -l)" -eq 2 ] || fail "stale shards left: $(ls "$TMP/multi")"
"$PREP" --char -q --raw -o "$TMP/raw" "$TXT" >/dev/null
[ "$(size "$TMP/raw/tinyshakespeare_train_000000.bin")" = $((2 * 1003854)) ] || fail "raw size"

# ---- documents and the split by documents -------------------------------------------
printf 'one\ntwo\n\nthree\nfour\nfive\n' >"$TMP/lines.txt"
"$PREP" --char --docs line --split docs --val 0.2 -o "$TMP/lines" "$TMP/lines.txt" >"$TMP/summary"
grep -q "5 documents" "$TMP/summary" || fail "line documents: $(cat "$TMP/summary")"
# 4 documents for training: one two three four (no newlines) = 15 chars
[ "$(word "$TMP/lines/lines_train_000000.bin" 2)" = 15 ] || fail "doc split train count"
[ "$(word "$TMP/lines/lines_val_000000.bin" 2)" = 4 ] || fail "doc split val count"
printf 'para one\nstill one\n\n\npara two\n' >"$TMP/paras.txt"
"$PREP" --char --docs paragraph --val 0 -o "$TMP/paras" "$TMP/paras.txt" >"$TMP/summary"
grep -q "2 documents" "$TMP/summary" || fail "paragraphs: $(cat "$TMP/summary")"
[ ! -e "$TMP/paras/paras_val_000000.bin" ] || fail "val shard with --val 0"
# a directory of inputs, in name order
mkdir "$TMP/dir"
printf 'bb' >"$TMP/dir/2.txt"
printf 'aa' >"$TMP/dir/1.txt"
"$PREP" --char --val 0.5 --name d -o "$TMP/dirout" "$TMP/dir" >/dev/null
[ "$(token "$TMP/dirout/d_train_000000.bin" 0)" = 0 ] || fail "directory order"
[ "$(token "$TMP/dirout/d_val_000000.bin" 0)" = 1 ] || fail "directory order (val)"

# ---- tokenizers ------------------------------------------------------------------------
TIK=$SRC/tests/data/tokenizer/gpt2.tiktoken.zst
"$PREP" --tiktoken "$TIK" --pattern gpt2 --docs paragraph --bos -o "$TMP/gpt2" "$TXT" >"$TMP/summary"
cat "$TMP/summary"
g=$TMP/gpt2/tinyshakespeare_train_000000.bin
grep -q "7222 documents" "$TMP/summary" || fail "paragraph count"
grep -q "BOS token: 50256 before each document" "$TMP/summary" || fail "gpt2 BOS"
# <|endoftext|> "First" " Citizen" ":" "\n" "Before"
[ "$(token "$g" 0) $(token "$g" 1) $(token "$g" 2) $(token "$g" 3) $(token "$g" 4) $(token "$g" 5)" = \
  "50256 5962 22307 25 198 8421" ] || fail "gpt2 tokens: $(od -A n -t u2 -j 1024 -N 12 "$g")"
n_train=$(word "$g" 2)
n_val=$(word "$TMP/gpt2/tinyshakespeare_val_000000.bin" 2)
grep -q "tokens: $((n_train + n_val)) " "$TMP/summary" || fail "gpt2 token total"

# train a tokenizer on a part of the text, then encode with the saved one: same shards
head -c 200000 "$TXT" >"$TMP/part.txt"
"$PREP" --train-tokenizer 600 --bos --docs paragraph -o "$TMP/trained" "$TMP/part.txt" >"$TMP/summary"
cat "$TMP/summary"
[ -f "$TMP/trained/tokenizer.tok" ] || fail "no tokenizer.tok"
grep -q "vocabulary: 600 tokens" "$TMP/summary" || fail "trained vocab size"
grep -q "BOS token: 591 before each document" "$TMP/summary" || fail "trained BOS (<|bos|> is id 600 - 9)"
[ "$(token "$TMP/trained/part_train_000000.bin" 0)" = 591 ] || fail "first token is not BOS"
"$PREP" --tokenizer "$TMP/trained/tokenizer.tok" --bos --docs paragraph -q -o "$TMP/reuse" \
  "$TMP/part.txt" >/dev/null
cmp "$TMP/trained/part_train_000000.bin" "$TMP/reuse/part_train_000000.bin" || fail "reuse train"
cmp "$TMP/trained/part_val_000000.bin" "$TMP/reuse/part_val_000000.bin" || fail "reuse val"

# ---- Parquet --------------------------------------------------------------------------
# docs.parquet holds the paragraphs of docs.txt in its "text" column (and a NULL)
PQ=$SRC/tests/data/prepare/docs.parquet
"$PREP" --char -q -o "$TMP/pq" "$PQ" >"$TMP/summary"
grep -q "49 documents" "$TMP/summary" || fail "parquet documents: $(cat "$TMP/summary")"
"$PREP" --char -q --docs paragraph -o "$TMP/pqtxt" "$SRC/tests/data/prepare/docs.txt" >/dev/null
for f in docs_train_000000.bin docs_val_000000.bin meta.json; do
  cmp "$TMP/pq/$f" "$TMP/pqtxt/$f" || fail "parquet and text differ: $f"
done
# GPT-2 tokens, BOS per document, split by documents: val starts at a BOS
"$PREP" --tiktoken "$TIK" --pattern gpt2 --bos --split docs --val 0.2 -o "$TMP/pqgpt2" "$PQ" \
  >"$TMP/summary"
cat "$TMP/summary"
[ "$(token "$TMP/pqgpt2/docs_train_000000.bin" 0) $(token "$TMP/pqgpt2/docs_train_000000.bin" 1)" = \
  "50256 5962" ] || fail "parquet gpt2 tokens"
[ "$(token "$TMP/pqgpt2/docs_val_000000.bin" 0)" = 50256 ] || fail "val does not start at a BOS"
# a tokenizer trained on the Parquet documents encodes the text file the same way
"$PREP" --train-tokenizer 400 --bos -q -o "$TMP/pqtrain" "$PQ" >/dev/null
"$PREP" --tokenizer "$TMP/pqtrain/tokenizer.tok" --bos --docs paragraph -q -o "$TMP/pqtrain2" \
  "$SRC/tests/data/prepare/docs.txt" >/dev/null
cmp "$TMP/pqtrain/docs_train_000000.bin" "$TMP/pqtrain2/docs_train_000000.bin" ||
  fail "trained tokenizer: parquet and text differ"
# a fixture of the Parquet reader's tests: zstd, v2 pages, nulls and empty strings skipped
HAND=$SRC/tests/data/parquet/hand_v2_zstd.parquet
"$PREP" --char --column s -o "$TMP/hand" "$HAND" >"$TMP/summary"
want_docs=$(awk -F'\t' 'f && $6 != "N" && $6 != "x" {n++} /^rows/ {f=1} END {print n}' \
  "$SRC/tests/data/parquet/hand.expected")
want_bytes=$(awk -F'\t' 'f && $6 != "N" && $6 != "x" {n += (length($6) - 1) / 2} /^rows/ {f=1} END {print n}' \
  "$SRC/tests/data/parquet/hand.expected")
grep -q "$want_docs documents, $want_bytes bytes" "$TMP/summary" ||
  fail "hand_v2_zstd: want $want_docs documents, $want_bytes bytes: $(cat "$TMP/summary")"
expect_fail "hand_v2_zstd.parquet: no column 'text' (the columns are: id, i64, f, d, b, s, e)" \
  --char -o "$TMP/e" "$HAND"
expect_fail "column 'id' is INT32, not a string" --char --column id -o "$TMP/e" "$HAND"
expect_fail "compression codec LZ4_RAW is not supported" --char --column s -o "$TMP/e" \
  "$SRC/tests/data/parquet/lz4.parquet"

# ---- errors --------------------------------------------------------------------------
expect_fail "no output directory" --char "$TXT"
expect_fail "no input files" --char -o "$TMP/e"
expect_fail "$TMP/missing.txt: No such file or directory" --char -o "$TMP/e" "$TMP/missing.txt"
expect_fail "--val: '1.5' is not a fraction" --char --val 1.5 -o "$TMP/e" "$TXT"
expect_fail "--docs: 'words' is not" --char --docs words -o "$TMP/e" "$TXT"
printf 'ok\377bad' >"$TMP/bad.txt"
expect_fail "bad.txt: invalid UTF-8 at byte 2 (0xff)" --char -o "$TMP/e" "$TMP/bad.txt"
: >"$TMP/empty.txt"
expect_fail "the input has no text" --char -o "$TMP/e" "$TMP/empty.txt"
printf 'x\n' >"$TMP/one.txt"
expect_fail "--val 0.1 of 1 document leaves no document for training" --char --split docs \
  -o "$TMP/e" "$TMP/one.txt"
expect_fail "more than one encoder" --char --tokenizer x.tok -o "$TMP/e" "$TXT"
expect_fail "no encoder" -o "$TMP/e" "$TXT"
expect_fail "--bos needs a tokenizer" --char --bos -o "$TMP/e" "$TXT"
expect_fail "--special goes with --tiktoken" --char --special "<|x|>" -o "$TMP/e" "$TXT"
expect_fail "$TMP/none.tok" --tokenizer "$TMP/none.tok" -o "$TMP/e" "$TXT"
expect_fail "does not fit uint16 token shards" \
  --tiktoken "$SRC/tests/data/tokenizer/cl100k_base.tiktoken.zst" -o "$TMP/e" "$TMP/one.txt"
expect_fail "--bos-token: the tokenizer has no special token <|nope|>" --tiktoken "$TIK" \
  --bos-token "<|nope|>" -o "$TMP/e" "$TMP/one.txt"
expect_fail "--train-tokenizer: '100' is not an integer in [265, 65536]" --train-tokenizer 100 \
  -o "$TMP/e" "$TXT"
expect_fail "--pattern goes with --tiktoken or --train-tokenizer" --char --pattern gpt2 -o "$TMP/e" "$TXT"
expect_fail "not a regular file" --char -o "$TMP/e" /dev/null
expect_fail "-o: the output directory's name is empty" --char -o "" "$TXT"
expect_fail "--shard-tokens: ' 5' is not an integer" --char --shard-tokens " 5" -o "$TMP/e" "$TXT"
# a bad byte in a line is placed by the line's offset in the file; library errors read as the tool's
printf 'hello\nq\377r\n' >"$TMP/bad.txt"
expect_fail "tyr_prepare: $TMP/bad.txt (document from byte 6): invalid UTF-8 at byte 1" \
  --char --docs line -o "$TMP/e" "$TMP/bad.txt"
# failed runs leave no temporary files behind
[ -z "$(ls -A "$TMP/e" 2>/dev/null)" ] || fail "left in the output dir: $(ls -A "$TMP/e")"

# one directory, two data sets: a second character vocabulary (meta.json
# describes every shard there) is refused, and the first data set stays whole
mkdir -p "$TMP/two" && printf 'hello there\n' >"$TMP/two.txt"
"$PREP" -q --char --val 0.5 -o "$TMP/two" "$TMP/one.txt" >/dev/null || fail "first data set"
cp "$TMP/two/meta.json" "$TMP/meta.keep"
expect_fail "holds shards of another data set (one_" --char --val 0.5 -o "$TMP/two" "$TMP/two.txt"
cmp -s "$TMP/two/meta.json" "$TMP/meta.keep" || fail "meta.json changed"
# a directory given with a trailing slash names the shards after it
mkdir -p "$TMP/dd" && cp "$TMP/two.txt" "$TMP/dd/"
"$PREP" -q --char --val 0.5 -o "$TMP/dd_out" "$TMP/dd/" >/dev/null || fail "input dir with a slash"
[ -e "$TMP/dd_out/dd_train_000000.bin" ] || fail "shards not named after the directory: $(ls "$TMP/dd_out")"
# "./" gives no name to take: the shards are data_*
(cd "$TMP/dd" && "$PREP" -q --char --val 0.5 -o "$TMP/dot_out" ./ >/dev/null) || fail "input ./"
[ -e "$TMP/dot_out/data_train_000000.bin" ] || fail "input ./: $(ls -A "$TMP/dot_out")"

echo "prepare: all checks passed"
