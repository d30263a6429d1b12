#!/bin/sh
# Builds tests/cxx/test_cxx.cpp as C++17 with the given compiler against the
# build's shared library, with the warnings CI uses, and runs it.
# Usage: check.sh CXX SOURCE_DIR BUILD_DIR
set -eu
cxx=$1
src=$2
build=$3
out=$(mktemp /tmp/tyr-cxx-test.XXXXXX)
trap 'rm -f "$out"' EXIT
"$cxx" -std=c++17 -Wall -Wextra -Werror -O1 -I"$src/include" "$src/tests/cxx/test_cxx.cpp" \
  -o "$out" -L"$build" -ltyr -Wl,-rpath,"$build"
"$out"
