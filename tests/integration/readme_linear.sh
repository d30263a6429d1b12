#!/bin/sh
# The README's first example, three ways:
#  - examples/readme_linear_ok (weight [Out, In]) compiles with gcc and
#    clang at -O0/-O2, runs, and prints [32, 512];
#  - examples/readme_linear_dynamic (sizes from argv, weight [in, out] by
#    mistake) stops with "main.c:LINE: tyr_linear: ..." naming both shapes;
#  - tests/compile/fail/readme_linear.c (constant sizes, the same mistake)
#    does not compile, and the compiler says "tyr_linear: the weight must be
#    [out, in] ...".
# Usage: readme_linear.sh BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

# 1. the corrected program
out=$("$build/readme_linear_ok") || fail "readme_linear_ok exited with status $?"
echo "$out" | grep -qF "[32, 512]" || fail "readme_linear_ok printed '$out', not [32, 512]"
echo "ok: readme_linear_ok: $out"

# 2. run-time sizes: stops at the call
prog="$src/examples/readme_linear_dynamic/main.c"
line=$(grep -n 'tyr_linear(x, w)' "$prog" | head -n 1 | cut -d: -f1)
[ -n "$line" ] || fail "no tyr_linear call in $prog"
if "$build/readme_linear_dynamic" 32 768 512 >"$tmp/stdout" 2>"$tmp/stderr"; then
  fail "readme_linear_dynamic 32 768 512 exited with status 0"
fi
err=$(cat "$tmp/stderr")
for want in "main.c:$line: tyr_linear: " "[32, 768]" "[768, 512]" "[out, in]"; do
  echo "$err" | grep -qF -- "$want" || fail "readme_linear_dynamic: '$err' lacks '$want'"
done
echo "ok: readme_linear_dynamic 32 768 512: $err"
# --help, and sizes that are not positive integers
"$build/readme_linear_dynamic" --help | grep -q "usage:" || fail "readme_linear_dynamic --help"
for bad in "2.5 8 8" "0 8 8" "x 8 8" "8 8"; do
  # shellcheck disable=SC2086
  if "$build/readme_linear_dynamic" $bad >/dev/null 2>"$tmp/e"; then fail "readme_linear_dynamic $bad was accepted"; fi
  grep -q "usage:" "$tmp/e" || fail "readme_linear_dynamic $bad: no usage line"
done
# when in == out the mistaken shape happens to fit and the program runs
"$build/readme_linear_dynamic" 4 8 8 >/dev/null || fail "readme_linear_dynamic 4 8 8 failed"

# 3. constant sizes: compile errors (and the other two compile everywhere)
ccs=
for cc in gcc clang; do
  if command -v "$cc" >/dev/null 2>&1; then ccs="$ccs $cc"; fi
done
[ -n "$ccs" ] || fail "neither gcc nor clang found"
for cc in $ccs; do
  for opt in -O0 -O2; do
    flags="-std=gnu11 $opt -Wall -Wextra -I$src/include"
    # shellcheck disable=SC2086
    if $cc $flags -c "$src/tests/compile/fail/readme_linear.c" -o "$tmp/bad.o" >"$tmp/bad" 2>&1; then
      fail "$cc $opt compiled tests/compile/fail/readme_linear.c"
    fi
    grep -qF "tyr_linear: the weight must be [out, in] with in equal to the last dim of x" \
      "$tmp/bad" || { cat "$tmp/bad"; fail "$cc $opt: no tyr_linear message"; }
    for ex in readme_linear_ok readme_linear_dynamic; do
      # shellcheck disable=SC2086
      $cc $flags -Werror -c "$src/examples/$ex/main.c" -o "$tmp/$ex.o" >"$tmp/cc" 2>&1 ||
        { cat "$tmp/cc"; fail "$cc $opt does not compile examples/$ex"; }
    done
    echo "ok: $cc $opt: $(grep -F 'tyr_linear: the weight' "$tmp/bad" | head -n 1 | cut -c1-200)"
  done
done
echo "readme_linear: all checks passed"
