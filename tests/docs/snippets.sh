#!/bin/sh
# Compiles (and runs) the C snippets of one user-guide page, so that the
# guide cannot drift from the headers.  A fenced ```c block is a test when
# the line before its fence is one of
#   <!-- snippet: run -->              a complete program: built, run, exit 0
#   <!-- snippet: compile -->          a complete program: built only (e.g. it needs a GPU)
#   <!-- snippet: fail: MESSAGE -->    must fail to compile, the diagnostics containing MESSAGE
# Compiler messages point into the page (#line).  A page with no tested
# block fails.  Usage: snippets.sh PAGE.md SOURCE_DIR BUILD_DIR
set -eu
page=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
build=$(cd "$3" && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d /tmp/tyr-doc-snippets.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

awk -v dir="$tmp" -v page="$page" '
  /^<!-- snippet: .* -->$/ {
    mode = $0; sub(/^<!-- snippet: /, "", mode); sub(/ -->$/, "", mode); want = NR; next
  }
  want == NR - 1 && /^```c$/ {
    n++; file = sprintf("%s/s%02d.c", dir, n)
    print mode > (file ".mode"); close(file ".mode")
    printf "#line %d \"%s\"\n", NR + 1, page > file
    inblock = 1; next
  }
  inblock && /^```$/ { inblock = 0; close(file); next }
  inblock { print > file }
' "$page"

count=0
failed=0
for f in "$tmp"/s*.c; do
  [ -f "$f" ] || continue
  count=$((count + 1))
  mode=$(cat "$f.mode")
  line=$(sed -n '1s/^#line \([0-9]*\).*/\1/p' "$f")
  where="$(basename "$page"):$line"
  case $mode in
  run | compile)
    if ! "$cc" -std=gnu11 -Wall -Wextra -Werror -I"$src/include" "$f" -o "${f%.c}" \
      -L"$build" -ltyr -Wl,-rpath,"$build" -lm 2>"$f.err"; then
      echo "FAIL $where: does not compile"; cat "$f.err"; failed=$((failed + 1)); continue
    fi
    if [ "$mode" = run ]; then
      if ! (cd "$tmp" && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} timeout 120 "${f%.c}") >"$f.out" 2>&1; then
        echo "FAIL $where: the program failed"; cat "$f.out"; failed=$((failed + 1)); continue
      fi
    fi
    echo "ok   $where ($mode)"
    ;;
  fail:*)
    msg=${mode#fail: }
    if "$cc" -std=gnu11 -I"$src/include" -c "$f" -o "${f%.c}.o" 2>"$f.err"; then
      echo "FAIL $where: compiles, but must fail with: $msg"; failed=$((failed + 1)); continue
    fi
    if ! grep -qF -- "$msg" "$f.err"; then
      echo "FAIL $where: the compiler did not say: $msg"; cat "$f.err"; failed=$((failed + 1)); continue
    fi
    echo "ok   $where (fails to compile as it should)"
    ;;
  *)
    echo "FAIL $where: unknown snippet mode '$mode'"; failed=$((failed + 1))
    ;;
  esac
done
if [ "$count" -eq 0 ]; then
  echo "FAIL $page: no tested snippet"
  exit 1
fi
echo "$(basename "$page"): $count snippets, $failed failed"
[ "$failed" -eq 0 ]
