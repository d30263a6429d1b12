#!/bin/sh
# The typed layer's cost to the compiler at ResNet-18 size: compiling
# bench/resnet18_static.c (a ResNet-18 forward with every shape in the types)
# must take at most 5 s of CPU time with gcc and with clang, at -O0 and -O2.
# CPU time (user + sys), not wall time, so that a busy machine does not fail
# the test.  Prints each figure.
set -eu
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for cc in gcc clang; do
  command -v $cc >/dev/null 2>&1 || continue
  for opt in -O0 -O2; do
    /usr/bin/time -f "%U %S %e" -o "$tmp/t" $cc -std=gnu11 $opt -Wall -Wextra -Werror -I"$src/include" \
      -c "$src/bench/resnet18_static.c" -o "$tmp/r.o"
    read -r u s e <"$tmp/t"
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    echo "$cc $opt: resnet18_static.c compiles in ${cpu} s CPU (${e} s wall)"
    awk -v c="$cpu" 'BEGIN { exit !(c <= 5) }' || { echo "FAIL: over 5 s"; status=1; }
  done
done
[ -x "$build/bench/resnet18_static" ] && "$build/bench/resnet18_static"
exit $status
