#!/bin/sh
# Installs the build to a temporary prefix and builds an outside program
# (tests/install/consumer) against it with CMake (find_package(Tyr), the
# shared and the static library) and with pkg-config (shared and static);
# then builds it with Tyr added by add_subdirectory, which must not build
# Tyr's tests or programs.  Usage: install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/tyr-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
consumer=$src/tests/install/consumer
cc=${CC:-cc}
pkgconfig=${PKG_CONFIG:-pkg-config}

fail() {
  echo "install test: $*" >&2
  exit 1
}

echo "-- cmake --install to $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install failed"; }
for f in include/tyr/tyr.h include/tyr/typed.h; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done
libdir=$(dirname "$(find "$prefix" -name libtyr.a | head -n 1)")
[ -f "$libdir/libtyr.a" ] || fail "libtyr.a not installed"
[ -e "$libdir/libtyr.so" ] || fail "libtyr.so not installed"
[ -f "$libdir/cmake/Tyr/TyrConfig.cmake" ] || fail "TyrConfig.cmake not installed"
[ -f "$libdir/pkgconfig/tyr.pc" ] || fail "tyr.pc not installed"

echo "-- find_package(Tyr)"
cmake -S "$consumer" -B "$tmp/b-pkg" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  >"$tmp/pkg.log" 2>&1 || { cat "$tmp/pkg.log"; fail "configuring with find_package(Tyr) failed"; }
cmake --build "$tmp/b-pkg" >>"$tmp/pkg.log" 2>&1 || { cat "$tmp/pkg.log"; fail "building with find_package(Tyr) failed"; }
"$tmp/b-pkg/consumer" || fail "the find_package program (Tyr::tyr) failed"
"$tmp/b-pkg/consumer_static" || fail "the find_package program (Tyr::tyr_static) failed"
readelf -d "$tmp/b-pkg/consumer" | grep -q 'libtyr\.so' || fail "Tyr::tyr did not link libtyr.so"
if readelf -d "$tmp/b-pkg/consumer_static" | grep -q 'libtyr\.so'; then
  fail "Tyr::tyr_static linked libtyr.so"
fi

echo "-- pkg-config, shared"
# the installed tyr.pc first; the dependencies' own .pc files where they already are
export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# shellcheck disable=SC2046
$cc -o "$tmp/pc-shared" "$consumer/main.c" $($pkgconfig --cflags --libs tyr) ||
  fail "building with pkg-config (shared) failed"
# the -L directories of the static libraries' dependencies (CUDA's, when built with it)
deps_path=$($pkgconfig --static --libs-only-L tyr | sed 's/-L//g' | tr ' ' ':')
LD_LIBRARY_PATH="$libdir:$deps_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/pc-shared" || fail "the pkg-config program (shared) failed"

echo "-- pkg-config, static"
libs=$($pkgconfig --libs --static tyr | sed 's/-ltyr /-Wl,-Bstatic -ltyr -Wl,-Bdynamic /')
# shellcheck disable=SC2086
$cc -o "$tmp/pc-static" "$consumer/main.c" $($pkgconfig --cflags tyr) $libs ||
  fail "building with pkg-config --static failed"
if readelf -d "$tmp/pc-static" | grep -q 'libtyr\.so'; then
  fail "the pkg-config --static program linked libtyr.so"
fi
LD_LIBRARY_PATH="$deps_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$tmp/pc-static" || fail "the pkg-config program (static) failed"

echo "-- add_subdirectory"
# Debug: Tyr compiles again inside the outside project, quickly at -O0
cmake -S "$consumer" -B "$tmp/b-sub" -DTYR_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=Debug -DTYR_CUDA=OFF \
  >"$tmp/sub.log" 2>&1 || { cat "$tmp/sub.log"; fail "configuring with add_subdirectory failed"; }
if cmake --build "$tmp/b-sub" --target help | grep -Eq 'test_ops|train_gpt|bench_core'; then
  fail "add_subdirectory builds Tyr's tests or programs"
fi
cmake --build "$tmp/b-sub" -j "${JOBS:-2}" >>"$tmp/sub.log" 2>&1 || { tail -n 40 "$tmp/sub.log"; fail "building with add_subdirectory failed"; }
"$tmp/b-sub/consumer" || fail "the add_subdirectory program failed"
"$tmp/b-sub/consumer_static" || fail "the add_subdirectory program (static) failed"
echo "install test: all passed"
