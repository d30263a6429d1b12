#!/bin/sh
# check.sh pass|fail CC FILE INCLUDE_DIR
# 'fail': FILE must not compile, and the compiler's output must contain the
# text after '// expect:' in FILE.  'pass': FILE must compile (and link).
# Both are tried at -O0 and at -O2.
mode=$1 cc=$2 src=$3 inc=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for opt in -O0 -O2; do
  if "$cc" -std=gnu11 $opt -Wall -Wextra -I"$inc" -fsyntax-only "$src" >"$tmp/out" 2>&1 &&
     "$cc" -std=gnu11 $opt -Wall -Wextra -I"$inc" -c "$src" -o "$tmp/o.o" >>"$tmp/out" 2>&1; then
    ok=1
  else
    ok=0
  fi
  if [ "$mode" = pass ]; then
    if [ $ok -ne 1 ]; then
      echo "FAIL: $src does not compile with $cc $opt:"; cat "$tmp/out"; status=1
    fi
  else
    expect=$(sed -n 's,^.*// expect: *,,p' "$src" | head -n 1)
    if [ -z "$expect" ]; then echo "FAIL: $src has no '// expect:' line"; exit 1; fi
    if [ $ok -eq 1 ]; then
      echo "FAIL: $src compiled with $cc $opt but must not"; status=1
    elif ! grep -qF -- "$expect" "$tmp/out"; then
      echo "FAIL: $src failed with $cc $opt, but without '$expect':"; cat "$tmp/out"; status=1
    else
      echo "ok: $cc $opt: $(grep -F -- "$expect" "$tmp/out" | head -n 1)"
    fi
  fi
done
exit $status
