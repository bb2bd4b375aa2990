#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the whole test suite: installs what is missing, builds, and runs every
# meson test (unit, pipeline and headless-browser suites).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${CIMSHUB_TEST_BUILD:-$ROOT/build-tests}

"$ROOT/deploy/setup.sh"

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" "$ROOT"
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
