#!/bin/sh
# tyr_prepare leaves no partial output set when it fails: a run that fails
# after training a tokenizer writes nothing (and removes the output directory
# it made), a failing run over an earlier complete output leaves that output
# as it was, and the staging directory of a killed run is removed by the next.
# Args: <build dir> <source dir>.
set -eu
PREP=$1/tyr_prepare
TXT=$2/data/tinyshakespeare.txt
TMP=$(mktemp -d /tmp/tyr-prepare-partial-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
head -c 20000 "$TXT" >"$TMP/one.txt"

# one document cannot give both splits: the error comes after the tokenizer
# was trained (and, before, saved into the output directory)
if "$PREP" -q --train-tokenizer 300 --split docs --val 0.5 -o "$TMP/new" "$TMP/one.txt" >/dev/null 2>"$TMP/err"; then
  fail "a run without a val document succeeded"
fi
grep -q "leaves no document\|no document" "$TMP/err" || fail "unexpected message: $(cat "$TMP/err")"
[ ! -e "$TMP/new" ] || fail "the failed run left $(ls -A "$TMP/new")"
echo "ok: a failed run leaves no output directory"

# over a complete earlier output: untouched
"$PREP" -q --char -o "$TMP/out" "$TMP/one.txt" >/dev/null
ls -A "$TMP/out" | sort >"$TMP/before"
cksum "$TMP/out"/* >"$TMP/sums"
if "$PREP" -q --train-tokenizer 300 --split docs --val 0.5 -o "$TMP/out" "$TMP/one.txt" >/dev/null 2>&1; then
  fail "the second run succeeded"
fi
ls -A "$TMP/out" | sort >"$TMP/after"
cmp -s "$TMP/before" "$TMP/after" || fail "the output set changed: $(cat "$TMP/after")"
cksum "$TMP/out"/* | cmp -s - "$TMP/sums" || fail "an output file changed"
echo "ok: a failed run leaves an earlier output as it was"

# a killed run's staging directory
sh -c 'exit 0' &
dead=$!
wait $dead
mkdir "$TMP/out/.tyr_prepare-$dead-abcdef"
echo partial >"$TMP/out/.tyr_prepare-$dead-abcdef/one_train_000000.bin"
"$PREP" -q --char -o "$TMP/out" "$TMP/one.txt" >/dev/null
[ ! -e "$TMP/out/.tyr_prepare-$dead-abcdef" ] || fail "the stale staging directory is still there"
ls -A "$TMP/out" | sort | cmp -s - "$TMP/before" || fail "unexpected files: $(ls -A "$TMP/out")"
echo "ok: a killed run's staging directory is removed by the next run"

# a run ended by a signal (here SIGXFSZ: the file size limit, hit while the
# token file is written) removes its token file and the directory it made
for i in 1 2 3 4 5 6 7 8; do cat "$TXT"; done >"$TMP/big.txt"
rc=0
(ulimit -c 0 && ulimit -f 1000 && exec "$PREP" -q --char -o "$TMP/sig" "$TMP/big.txt") >/dev/null 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "the run under a file size limit succeeded"
[ ! -e "$TMP/sig" ] || fail "a run ended by a signal left: $(ls -AR "$TMP/sig")"
echo "ok: a run ended by a signal leaves nothing (status $rc)"
# a signal the caller ignores (nohup, background jobs) stays ignored
"$PREP" -q --char -o "$TMP/hup" "$TMP/big.txt" >/dev/null 2>&1 &
pid=$!
rc=0
wait $pid || rc=$?
[ $rc -eq 0 ] || fail "plain run: status $rc"
(trap '' HUP && exec "$PREP" -q --char -o "$TMP/hup2" "$TMP/big.txt") >/dev/null 2>&1 &
pid=$!
# once the subshell has become tyr_prepare (SIGHUP ignored from then on)
exe=$(readlink -f "$PREP")
n=0
while [ "$(readlink /proc/$pid/exe 2>/dev/null)" != "$exe" ] && [ -e /proc/$pid ] && [ $n -lt 500 ]; do
  sleep 0.01
  n=$((n + 1))
done
kill -HUP $pid 2>/dev/null || :
rc=0
wait $pid || rc=$?
[ $rc -eq 0 ] || fail "a run with SIGHUP ignored ended with status $rc"
echo "ok: an ignored SIGHUP stays ignored"
