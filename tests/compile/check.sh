#!/bin/sh
# check.sh pass|fail CC FILE INCLUDE_DIR
# 'fail': FILE must not compile, the compiler's output must contain the text
# of every '// expect:' line in FILE, and the output rewritten by
# tools/tyr-cc the text of every '// expect-tyr-cc:' line.  'pass': FILE
# must compile without a warning (-Werror).  Both are tried at -O0 and -O2.
mode=$1 cc=$2 src=$3 inc=$4
tyrcc=$(dirname "$0")/../../tools/tyr-cc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
werror=
[ "$mode" = pass ] && werror=-Werror
for opt in -O0 -O2; do
  if "$cc" -std=gnu11 $opt -Wall -Wextra $werror -I"$inc" -fsyntax-only "$src" >"$tmp/out" 2>&1 &&
     "$cc" -std=gnu11 $opt -Wall -Wextra $werror -I"$inc" -c "$src" -o "$tmp/o.o" >>"$tmp/out" 2>&1; then
    ok=1
  else
    ok=0
  fi
  if [ "$mode" = pass ]; then
    if [ $ok -ne 1 ]; then
      echo "FAIL: $src does not compile with $cc $opt:"; cat "$tmp/out"; status=1
    fi
    continue
  fi
  sed -n 's,^.*// expect: *,,p' "$src" >"$tmp/expect"
  sed -n 's,^.*// expect-tyr-cc: *,,p' "$src" >"$tmp/expect-tyr-cc"
  if [ ! -s "$tmp/expect" ]; then echo "FAIL: $src has no '// expect:' line"; exit 1; fi
  if [ $ok -eq 1 ]; then
    echo "FAIL: $src compiled with $cc $opt but must not"; status=1; continue
  fi
  while IFS= read -r expect; do
    if ! grep -qF -- "$expect" "$tmp/out"; then
      echo "FAIL: $src failed with $cc $opt, but without '$expect':"; cat "$tmp/out"; status=1
    else
      echo "ok: $cc $opt: $(grep -F -- "$expect" "$tmp/out" | head -n 1)"
    fi
  done <"$tmp/expect"
  if [ -s "$tmp/expect-tyr-cc" ]; then
    python3 "$tyrcc" --filter <"$tmp/out" >"$tmp/rewritten"
    while IFS= read -r expect; do
      if ! grep -qF -- "$expect" "$tmp/rewritten"; then
        echo "FAIL: tyr-cc's output for $src with $cc $opt lacks '$expect':"; cat "$tmp/rewritten"
        status=1
      else
        echo "ok: tyr-cc $cc $opt: $(grep -F -- "$expect" "$tmp/rewritten" | head -n 1)"
      fi
    done <"$tmp/expect-tyr-cc"
  fi
done
exit $status
