#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs cimshub on its demo configuration: installs what is missing, builds,
# makes demo signing keys, starts simulated cameras of several jurisdictions
# and the hub on 127.0.0.1:8080, and prints viewer URLs and demo tokens.
# The configuration is $STATE/cimshub.conf. The built-in one is written there
# when the file is missing or unedited, and an edited file is kept and used
# as it is.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build"
STATE=${CIMSHUB_DEMO_DIR:-/var/tmp/cimshub-demo}
CONF="$STATE/cimshub.conf"
BUILTIN_CONF="$ROOT/config/demo.conf"
SIM_HOST=127.0.0.1
SIM_PORT=8554

fail() {
  echo "deploy/demo.sh: $*" >&2
  exit 1
}

# An empty CIMS_TEST_FOOTAGE counts as unset: the first camera shows a pattern.
FOOTAGE=${CIMS_TEST_FOOTAGE:-}
if [ -n "$FOOTAGE" ]; then
  if [ ! -e "$FOOTAGE" ]; then
    fail "CIMS_TEST_FOOTAGE: no such file: $FOOTAGE (unset it to show a test pattern)"
  elif [ ! -f "$FOOTAGE" ] || [ ! -r "$FOOTAGE" ]; then
    fail "CIMS_TEST_FOOTAGE: not a readable file: $FOOTAGE (unset it to show a test pattern)"
  fi
fi

"$ROOT/deploy/setup.sh"

# Prints http_listen from configuration file $1, or nothing when the file
# has no uncommented http_listen line.
read_http_listen() {
  sed -n 's/^[[:space:]]*http_listen[[:space:]]*[=:][[:space:]]*"\([^"]*\)".*/\1/p' "$1" | head -n 1
}

# $CONF.builtin is the built-in file as the demo last wrote it, so a $CONF
# equal to it is unedited and follows the built-in file when that changes.
# A $CONF without it that differs from the built-in file may be an edit or
# an older built-in file: it is kept as $CONF.bak and replaced.
if [ ! -f "$CONF" ]; then
  CONF_MODE=builtin
elif [ -f "$CONF.builtin" ]; then
  if cmp -s "$CONF" "$CONF.builtin"; then CONF_MODE=builtin; else CONF_MODE=edited; fi
elif cmp -s "$CONF" "$BUILTIN_CONF"; then
  CONF_MODE=builtin
else
  CONF_MODE=backup
fi

# An edited configuration may move the hub's HTTP port.
if [ "$CONF_MODE" = edited ]; then
  HTTP_LISTEN=$(read_http_listen "$CONF")
else
  HTTP_LISTEN=$(read_http_listen "$BUILTIN_CONF")
fi
HTTP_LISTEN=${HTTP_LISTEN:-127.0.0.1:8080}
HTTP_HOST=${HTTP_LISTEN%:*}
HTTP_PORT=${HTTP_LISTEN##*:}
case "$HTTP_HOST" in
  0.0.0.0 | "[::]") URL_HOST=127.0.0.1 ;;
  *) URL_HOST=$HTTP_HOST ;;
esac
HUB_URL="http://$URL_HOST:$HTTP_PORT"

# Prints the `ss` line of each TCP listener that keeps the demo from
# listening on host $1, port $2: one on that address or on a wildcard one.
port_listeners() {
  ss -Hltnp "sport = :$2" 2>/dev/null | awk -v host="$1" '{
    address = $4
    sub(/:[0-9]+$/, "", address)
    if (address == host || address == "0.0.0.0" || address == "*" || address == "[::]" ||
        host == "0.0.0.0" || host == "[::]")
      print
  }'
}

# Exits with a message when TCP port $2 on host $1, which the demo's $3
# needs, is taken. The demo calls it before it writes any state or log, so
# a demo that is already running keeps its files.
port_require_free() {
  listeners=$(port_listeners "$1" "$2")
  [ -z "$listeners" ] && return 0

  owner=$(printf '%s\n' "$listeners" | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n 1)
  fail "TCP port $2 on $1, which $3 needs, is in use${owner:+ by $owner}:" \
    "another demo or program is using it. Stop it, then start the demo again."
}

port_require_free "$HTTP_HOST" "$HTTP_PORT" "the hub's HTTP server"
port_require_free "$SIM_HOST" "$SIM_PORT" "the camera simulator's RTSP server"

# libsrtp on OpenSSL serves far more viewers per core than Debian's NSS
# build; without it (no source package reachable) the hub uses Debian's.
SRTP_OPTION=""
if "$ROOT/deploy/build-libsrtp-openssl.sh" "$ROOT/build-libsrtp-openssl" >/dev/null 2>&1; then
  SRTP_OPTION="-Dlibsrtp_openssl=$ROOT/build-libsrtp-openssl"
else
  echo "note: libsrtp on OpenSSL could not be built; using Debian's libsrtp2" >&2
fi

if [ ! -f "$BUILD/build.ninja" ]; then
  # shellcheck disable=SC2086
  meson setup $SRTP_OPTION "$BUILD" "$ROOT" >/dev/null
fi
ninja -C "$BUILD" hub/cimshub hub/cimshubctl pipelines/cimshub-camera-sim >/dev/null

# /var/tmp is shared by every local user, who could make the folder, or a
# link in its place, before the demo does, and so reach files root writes.
# The folder is made first and checked after, so no gap is left between.
mkdir -m 700 "$STATE" 2>/dev/null || true
if [ -L "$STATE" ] || [ ! -d "$STATE" ] || [ "$(stat -c %u "$STATE")" != "$(id -u)" ]; then
  fail "$STATE is a symbolic link, not a folder, or belongs to another user; remove it, or set CIMSHUB_DEMO_DIR to a folder of yours."
fi
chmod 700 "$STATE"
mkdir -p "$STATE/keys"

CONF_NOTE=""
case "$CONF_MODE" in
  edited)
    CONF_NOTE="    The demo uses this edited file; delete it to get the built-in configuration back." ;;
  backup)
    cp "$CONF" "$CONF.bak"
    CONF_NOTE="    The earlier file, which differed from the built-in one, is kept as $CONF.bak." ;;
esac
if [ "$CONF_MODE" != edited ]; then
  cp "$BUILTIN_CONF" "$CONF"
  cp "$BUILTIN_CONF" "$CONF.builtin"
fi

for id in boston chelsea everett somerville cambridge state-police; do
  if [ ! -f "$STATE/keys/$id.pem" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$STATE/keys/$id.pem" 2>/dev/null
    openssl pkey -in "$STATE/keys/$id.pem" -pubout -out "$STATE/keys/$id.pub.pem"
  fi
done

# An edited configuration is checked before anything starts, so its errors
# come first, as FILE:LINE: message.
if ! "$BUILD/hub/cimshub" --check-config "$CONF" >/dev/null; then
  fail "$CONF is invalid (errors above); fix it, or delete it to get the built-in configuration back."
fi

# The positional parameters hold the simulator's --footage option, if any.
set --
if [ -n "$FOOTAGE" ]; then
  set -- --footage "$FOOTAGE"
  FIRST="source=file"
else
  FIRST="source=pattern"
fi

"$BUILD/pipelines/cimshub-camera-sim" --address "$SIM_HOST" --port "$SIM_PORT" "$@" \
  --camera "path=bos-0001,codec=h264,$FIRST,audio=pcma,width=768,height=576,fps=10,keyint=20" \
  --camera "path=bos-0002,codec=h264,width=1280,height=720,fps=25,keyint=50,pattern=ball" \
  --camera "path=chl-0001,codec=h264,width=1280,height=720,fps=15,keyint=30,pattern=smpte" \
  --camera "path=evt-0001,codec=h264,width=960,height=540,fps=15,keyint=30,pattern=snow" \
  --camera "path=som-0001,codec=h264,width=640,height=360,fps=10,keyint=20" \
  >"$STATE/camera-sim.log" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true' EXIT INT TERM

# Waits up to 10 s for the simulator to listen, so a simulator that fails at
# start stops the demo with its log instead of leaving the hub without cameras.
tries=0
until [ -n "$(port_listeners "$SIM_HOST" "$SIM_PORT")" ]; do
  if ! kill -0 "$SIM_PID" 2>/dev/null || [ "$tries" -ge 100 ]; then
    tail -n 20 "$STATE/camera-sim.log" >&2
    fail "the camera simulator did not start listening on $SIM_HOST:$SIM_PORT (log: $STATE/camera-sim.log)"
  fi
  tries=$((tries + 1))
  sleep 0.1
done

# Mints a demo token signed with jurisdiction $1's key and writes it to
# $TOKENS/$2.token. $3 is the subject (user id), $4 the user's name,
# $5 the roles and $6 the permissions, each comma-separated or empty.
mint() {
  (
    umask 077
    "$BUILD/hub/cimshubctl" token mint --key "$STATE/keys/$1.pem" \
      --issuer "https://idp.$1.demo.cimshub" --subject "$3" --name "$4" \
      --jurisdiction "$1" --roles "$5" --permissions "$6" --ttl 43200 \
      >"$TOKENS/$2.token"
  )
}

TOKENS="$STATE/tokens"
mkdir -p "$TOKENS"
chmod 700 "$TOKENS"
mint boston boston-viewer bpd-4711 "Dana Reyes" viewer view
mint chelsea chelsea-viewer cpd-0815 "Sam Okafor" viewer view
mint boston boston-grant-authority bpd-0102 "Alex Moreau" grant-authority ""
mint boston boston-commander bpd-0007 "Jordan Walsh" commander ""
mint boston boston-auditor bos-audit-3 "Robin Castillo" auditor ""

cat <<MSG

cimshub demo
  Configuration:   $CONF
${CONF_NOTE:+$CONF_NOTE
}  Viewer page for a Boston operator (may watch Boston cameras):
    $HUB_URL/#token=$(cat "$TOKENS/boston-viewer.token")
  Viewer page for a Chelsea operator (Boston cameras are refused without a grant):
    $HUB_URL/#token=$(cat "$TOKENS/chelsea-viewer.token")
  Admin tokens, valid for 12 hours; README.md shows a cimshubctl command for each.
  Boston grant authority (grants create, grants revoke), in $TOKENS/boston-grant-authority.token:
    $(cat "$TOKENS/boston-grant-authority.token")
  Boston commander (incidents start, incidents end), in $TOKENS/boston-commander.token:
    $(cat "$TOKENS/boston-commander.token")
  Boston auditor (Boston's audit records over the API), in $TOKENS/boston-auditor.token:
    $(cat "$TOKENS/boston-auditor.token")
  Metrics:         $HUB_URL/metrics
  Camera log:      $STATE/camera-sim.log
  Stop with Ctrl-C.

MSG

"$BUILD/hub/cimshub" --config "$CONF"
