#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds libsrtp2 from Debian 12's own source package with the OpenSSL crypto
# backend (Debian's binary package uses NSS) into a private prefix, which
# the hub's build links with -Dlibsrtp_openssl=PREFIX. Prints the
# PKG_CONFIG_PATH to use. Runs as root.
#
# Usage: deploy/build-libsrtp-openssl.sh [PREFIX]
#   PREFIX defaults to build-libsrtp-openssl/ at the top of the source tree.
# When PREFIX already contains a libsrtp2 built against OpenSSL, the script
# only prints the path and exits.

set -eu

top_dir=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-"$top_dir/build-libsrtp-openssl"}
src_dir="$prefix/src"
sources_file=/etc/apt/sources.list.d/cimshub-bookworm-src.sources

# Prints the directory holding libsrtp2.pc under the prefix, if any.
find_pc_dir() {
  pc=$(find "$prefix" -path "$src_dir" -prune -o -name libsrtp2.pc -print 2>/dev/null | head -n 1)
  [ -n "$pc" ] && dirname "$pc"
}

# A finished build has a .pc file and a shared library that links libcrypto.
is_built() {
  pc_dir=$(find_pc_dir) || return 1
  lib=$(find "$(dirname "$pc_dir")" -maxdepth 1 -name 'libsrtp2.so.*' | head -n 1)
  [ -n "$lib" ] && ldd "$lib" | grep -q libcrypto
}

print_result() {
  pc_dir=$(find_pc_dir)
  echo "libsrtp2 with OpenSSL is in $prefix"
  echo "PKG_CONFIG_PATH=$pc_dir"
}

if is_built; then
  print_result
  exit 0
fi

# Source index for bookworm from Debian's mirror, in a file of its own so the
# machine's own sources stay as they are.
if ! apt-cache showsrc libsrtp2 2>/dev/null | grep -q '^Package: libsrtp2'; then
  cat > "$sources_file" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  apt-get update -qq
fi

# Build tools: dpkg-source unpacks the package, the upstream tarball carries a
# generated configure script, and the crypto backend needs libssl-dev.
missing=""
for package in dpkg-dev build-essential pkg-config libssl-dev; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

mkdir -p "$src_dir"
cd "$src_dir"
if ! ls -d libsrtp2-*/ >/dev/null 2>&1; then
  # apt checks the files against the signed source index, so dpkg-source's
  # warning that it cannot verify the .dsc signature itself is expected.
  apt-get source --download-only libsrtp2
  dpkg-source -x libsrtp2_*.dsc
fi
tree=$(ls -d libsrtp2-*/ | head -n 1)
cd "$tree"

# libsrtp 2.5.0 ships both build systems. Its autotools option for the
# backend is --enable-openssl (the meson one is -Dcrypto-library=openssl).
./configure --prefix="$prefix" --enable-openssl --disable-pcap
make -j2 shared_library libsrtp2.a
make install

if ! is_built; then
  echo "build-libsrtp-openssl: the installed library in $prefix does not link libcrypto" >&2
  exit 1
fi
print_result
