#!/bin/sh
# run.sh CC SRC INCLUDE_DIR LIBTYR: builds SRC with CC against the shared
# library and runs it.
cc=$1 src=$2 inc=$3 lib=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
libdir=$(dirname "$lib")
for opt in -O0 -O2; do
  "$cc" -std=gnu11 $opt -Wall -Wextra -Werror -I"$inc" "$src" -o "$tmp/t" -L"$libdir" -ltyr \
    -Wl,-rpath,"$libdir" -lm || exit 1
  OMP_NUM_THREADS=1 "$tmp/t" || { echo "FAIL: $src built with $cc $opt"; exit 1; }
done
