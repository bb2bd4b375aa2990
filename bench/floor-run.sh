#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Measures the relay floor with Debian's libsrtp2 (NSS) and with libsrtp2
# rebuilt on OpenSSL: builds both cimshub-floor binaries, then prints the
# machine, the commit and one Markdown table per build.
#
# Usage: bench/floor-run.sh [cimshub-floor options...]
#   Default options: --viewers 100,1000 --suite gcm,cm (see --help).
#   FLOOR_BUILD_DIR   meson build directory (default build-floor/)
#   FLOOR_LIBSRTP_PREFIX  OpenSSL libsrtp2 prefix (default build-libsrtp-openssl/)

set -eu

top_dir=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FLOOR_BUILD_DIR:-"$top_dir/build-floor"}
libsrtp_prefix=${FLOOR_LIBSRTP_PREFIX:-"$top_dir/build-libsrtp-openssl"}

"$top_dir/deploy/build-libsrtp-openssl.sh" "$libsrtp_prefix"

if [ -f "$build_dir/build.ninja" ]; then
  meson configure "$build_dir" -Dlibsrtp_openssl="$libsrtp_prefix"
else
  meson setup "$build_dir" "$top_dir" -Dlibsrtp_openssl="$libsrtp_prefix"
fi
ninja -C "$build_dir" -j2 bench/cimshub-floor bench/cimshub-floor-openssl

echo
echo "commit: $(git -C "$top_dir" rev-parse HEAD)"
echo "cpus: $(nproc), $(grep -m 1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "kernel: $(uname -srm)"
echo "command: bench/floor-run.sh $*"
echo

for program in cimshub-floor cimshub-floor-openssl; do
  "$build_dir/bench/$program" "$@"
  echo
done
