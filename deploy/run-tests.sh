#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the whole test suite: installs what is missing, builds, and runs every
# meson test (unit, pipeline and headless-browser suites).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${CIMSHUB_TEST_BUILD:-$ROOT/build-tests}

"$ROOT/deploy/setup.sh"

# libsrtp on OpenSSL serves far more viewers per core than Debian's NSS
# build; without it (no source package reachable) the hub uses Debian's.
SRTP_OPTION=""
if "$ROOT/deploy/build-libsrtp-openssl.sh" "$ROOT/build-libsrtp-openssl" >/dev/null 2>&1; then
  SRTP_OPTION="-Dlibsrtp_openssl=$ROOT/build-libsrtp-openssl"
else
  echo "note: libsrtp on OpenSSL could not be built; using Debian's libsrtp2" >&2
fi

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup $SRTP_OPTION "$BUILD" "$ROOT"
fi
ninja -C "$BUILD"

# Real surveillance footage (an AVI beside the checkout, in shared/media)
# makes the browser test's picture; without it the camera simulator sends a
# generated pattern.
if [ -z "${CIMS_TEST_FOOTAGE:-}" ]; then
  for candidate in "$ROOT"/../shared/media/*.avi; do
    if [ -f "$candidate" ]; then
      CIMS_TEST_FOOTAGE=$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")
      export CIMS_TEST_FOOTAGE
      break
    fi
  done
fi

meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
