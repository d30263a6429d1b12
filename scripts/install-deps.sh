#!/bin/sh
# Installs the Debian packages Tyr needs to build and test, when any is missing.
# Safe to run repeatedly: it does nothing when everything is present.
set -e
PKGS="build-essential cmake pkg-config clang libomp-dev libclang-rt-dev \
libopenblas-dev libcmocka-dev libpcre2-dev libzstd-dev libsnappy-dev \
zlib1g-dev libpng-dev libjansson-dev libicu-dev libopenmpi-dev openmpi-bin python3 tmux \
dataset-fashion-mnist"
# `make docs` (the API reference) needs doxygen as well
[ -n "${DOCS:-}" ] && PKGS="$PKGS doxygen"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "tyr: installing missing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
