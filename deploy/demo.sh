#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs cimshub on its built-in demo configuration: installs what is missing,
# builds, makes demo signing keys, starts simulated cameras of several
# jurisdictions and the hub on 127.0.0.1:8080, and prints the viewer URL.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build"
STATE=${CIMSHUB_DEMO_DIR:-/var/tmp/cimshub-demo}
SIM_PORT=8554

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
  meson setup $SRTP_OPTION "$BUILD" "$ROOT" >/dev/null
fi
ninja -C "$BUILD" hub/cimshub hub/cimshubctl pipelines/cimshub-camera-sim >/dev/null

mkdir -p "$STATE/keys"
cp "$ROOT/config/demo.conf" "$STATE/cimshub.conf"
for id in boston chelsea everett somerville cambridge state-police; do
  if [ ! -f "$STATE/keys/$id.pem" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STATE/keys/$id.pem" 2>/dev/null
    openssl pkey -in "$STATE/keys/$id.pem" -pubout -out "$STATE/keys/$id.pub.pem"
  fi
done

SIM_ARGS=""
if [ -n "${CIMS_TEST_FOOTAGE:-}" ] && [ -f "$CIMS_TEST_FOOTAGE" ]; then
  SIM_ARGS="--footage $CIMS_TEST_FOOTAGE"
  FIRST="source=file"
else
  FIRST="source=pattern"
fi

# shellcheck disable=SC2086
"$BUILD/pipelines/cimshub-camera-sim" --address 127.0.0.1 --port "$SIM_PORT" $SIM_ARGS \
  --camera "path=bos-0001,codec=h264,$FIRST,audio=pcma,width=768,height=576,fps=10,keyint=20" \
  --camera "path=bos-0002,codec=h264,width=1280,height=720,fps=25,keyint=50,pattern=ball" \
  --camera "path=chl-0001,codec=h264,width=1280,height=720,fps=15,keyint=30,pattern=smpte" \
  --camera "path=evt-0001,codec=h264,width=960,height=540,fps=15,keyint=30,pattern=snow" \
  --camera "path=som-0001,codec=h264,width=640,height=360,fps=10,keyint=20" \
  >"$STATE/camera-sim.log" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT INT TERM

mint() {
  "$BUILD/hub/cimshubctl" token mint --key "$STATE/keys/$1.pem" \
    --issuer "https://idp.$1.demo.cimshub" --subject "$2" --name "$3" \
    --jurisdiction "$1" --roles viewer --permissions view --ttl 43200
}

BOSTON_TOKEN=$(mint boston bpd-4711 "Dana Reyes")
CHELSEA_TOKEN=$(mint chelsea cpd-0815 "Sam Okafor")

cat <<MSG

cimshub demo
  Configuration:   $STATE/cimshub.conf
  Viewer page for a Boston operator (may watch Boston cameras):
    http://127.0.0.1:8080/#token=$BOSTON_TOKEN
  Viewer page for a Chelsea operator (Boston cameras are refused without a grant):
    http://127.0.0.1:8080/#token=$CHELSEA_TOKEN
  Metrics:         http://127.0.0.1:8080/metrics
  Stop with Ctrl-C.

MSG

"$BUILD/hub/cimshub" --config "$STATE/cimshub.conf"
