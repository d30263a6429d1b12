#!/bin/sh
# tyr_cc_test.sh REPO_ROOT: tests of tools/tyr-cc.
#  1. recorded gcc and clang outputs (tests/tools/tyr_cc/*.txt, made from
#     tests/compile/fail cases) rewrite to the reviewed *.expected files;
#  2. no rewritten line is longer than the width limit;
#  3. as a launcher: the compiler's exit status is kept (0 for a program
#     that compiles, the compiler's status for one that does not, 127 for a
#     compiler that cannot be run), and the message is rewritten live.
root=$1
tyrcc="$root/tools/tyr-cc"
dir="$root/tests/tools/tyr_cc"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
fail() { echo "FAIL: $*"; status=1; }

n=0
for raw in "$dir"/*.txt; do
  exp=${raw%.txt}.expected
  python3 "$tyrcc" --filter <"$raw" >"$tmp/out" || fail "--filter exited non-zero on $raw"
  if ! diff -u "$exp" "$tmp/out"; then fail "$(basename "$raw") rewrites differently"; fi
  if awk 'length($0) > 400 { bad = 1 } END { exit !bad }' "$tmp/out"; then
    fail "$(basename "$raw"): a rewritten line is longer than 400 characters"
  fi
  n=$((n + 1))
done
[ $n -ge 10 ] || fail "only $n recorded outputs"

# the width limit shortens what it cannot rewrite
TYR_CC_WIDTH=100 python3 "$tyrcc" --filter <"$dir/mixed_linear_rank.clang.txt" >"$tmp/w"
awk 'length($0) > 100 { bad = 1 } END { exit bad }' "$tmp/w" || fail "TYR_CC_WIDTH=100 not kept"
grep -q 'characters \.\.\.\]' "$tmp/w" || fail "nothing shortened at TYR_CC_WIDTH=100"

# as a launcher
cat >"$tmp/good.c" <<'EOC'
#include <tyr/tyr.h>
enum { B = 2, C = 3 };
tyr_tensor *f(void) {
  tyr_T(B, C) x = tyr_zeros(B, C);
  tyr_T(C, B) y = tyr_transpose(x, 0, 1);
  return tyr_erase(y);
}
EOC
sed 's/tyr_T(C, B) y/tyr_T(B, C) y/' "$tmp/good.c" >"$tmp/bad.c"
for cc in gcc clang; do
  command -v $cc >/dev/null || continue
  python3 "$tyrcc" $cc -std=gnu11 -I"$root/include" -c "$tmp/good.c" -o "$tmp/good.o" 2>"$tmp/err"
  rc=$?
  [ $rc -eq 0 ] && [ -s "$tmp/good.o" ] || fail "$cc: good.c: status $rc"
  python3 "$tyrcc" $cc -std=gnu11 -I"$root/include" -c "$tmp/bad.c" -o "$tmp/bad.o" 2>"$tmp/err"
  rc=$?
  [ $rc -ne 0 ] || fail "$cc: bad.c compiled"
  $cc -std=gnu11 -I"$root/include" -c "$tmp/bad.c" -o "$tmp/bad.o" 2>/dev/null
  [ $rc -eq $? ] || fail "$cc: the compiler's status $? became $rc"
  grep -q "bad.c:5:.*tyr_transpose: the result is tyr_T(3, 2) but y is declared tyr_T(2, 3)" \
    "$tmp/err" || { fail "$cc: live message:"; cat "$tmp/err"; }
  grep -q 'char (\*)' "$tmp/err" && fail "$cc: an encoded type is left"
done
python3 "$tyrcc" /nonexistent/cc -c x.c 2>"$tmp/err"
[ $? -eq 127 ] || fail "a missing compiler is not status 127"
grep -q "tyr-cc: cannot run /nonexistent/cc" "$tmp/err" || fail "no message for a missing compiler"
python3 "$tyrcc" sh -c 'exit 3' 2>/dev/null
[ $? -eq 3 ] || fail "status 3 not kept"
python3 "$tyrcc" sh -c 'kill -KILL $$' 2>/dev/null
[ $? -eq 137 ] || fail "a compiler killed by SIGKILL is not status 137"
# --filter: from files as well as standard input, and bytes that are not UTF-8
printf 'x.c:1:1: error: bad \377 byte\n' >"$tmp/log"
python3 "$tyrcc" --filter "$tmp/log" >"$tmp/out" || fail "--filter FILE failed"
grep -q "x.c:1:1: error: bad" "$tmp/out" || fail "--filter FILE: $(cat "$tmp/out")"
PYTHONIOENCODING=utf-8:strict python3 "$tyrcc" --filter <"$tmp/log" >"$tmp/out" 2>"$tmp/err" ||
  fail "--filter on non-UTF-8 input: $(cat "$tmp/err")"
printf 'a.c:1:1: error: first' >"$tmp/l1"
printf 'b.c:2:1: error: second\n' >"$tmp/l2"
python3 "$tyrcc" --filter "$tmp/l1" "$tmp/l2" >"$tmp/out" || fail "--filter of two files failed"
[ "$(grep -c "error:" "$tmp/out")" -eq 2 ] || fail "--filter joined two files: $(cat "$tmp/out")"
printf 'caf\351.c:1:1: error: x\n' >"$tmp/l3" # a Latin-1 file name
python3 "$tyrcc" --filter "$tmp/l3" | cmp -s - "$tmp/l3" || fail "--filter changed bytes that are not UTF-8"
python3 "$tyrcc" --filter "$tmp/missing.log" 2>"$tmp/err" && fail "--filter of a missing file succeeded"
grep -q "missing.log" "$tmp/err" || fail "--filter: the missing file is not named"
[ $status -eq 0 ] && echo "tyr-cc: $n recorded outputs and the launcher behave"
exit $status
