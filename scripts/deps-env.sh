# Sourced, not run: `TYR_DEPS_BUILD=BUILD_DIR . scripts/deps-env.sh` (or, in
# bash, `. scripts/deps-env.sh BUILD_DIR`) exports the compiler, linker and
# loader paths of the Debian packages scripts/gpu-suite.sh --build unpacked
# into BUILD_DIR/deps-root (or of an unpacked root named by TYR_DEPS), so
# that programs of that build run and rebuild; nothing when neither exists
# (the packages are installed).  dash, Debian's and Ubuntu's sh, passes no
# arguments to a sourced file (it sees its caller's $1), hence the variable.
tyr_deps=""
tyr_deps_build=${TYR_DEPS_BUILD:-${1:-}}
[ -n "${TYR_DEPS:-}" ] && [ -d "$TYR_DEPS/usr" ] && tyr_deps=$TYR_DEPS # an unpacked root
[ -n "$tyr_deps_build" ] && [ -d "$tyr_deps_build/deps-root" ] &&
  tyr_deps=$tyr_deps_build/deps-root # unpacked .debs
if [ -n "$tyr_deps" ]; then
  L=$tyr_deps/usr/lib/x86_64-linux-gnu
  export CPATH="$tyr_deps/usr/include:$tyr_deps/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$L:$L/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$tyr_deps/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export PKG_CONFIG_PATH="$L/pkgconfig:$L/openblas-pthread/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi
