#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages that cimshub needs to build, run and test.
# Idempotent: when every package is already installed it returns at once.
set -eu

PACKAGES="
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
  libglib2.0-dev libjson-glib-dev libsoup-3.0-dev libconfig-dev
  libsqlite3-dev sqlite3 libssl-dev openssl libnice-dev libsrtp2-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  libgstreamer-plugins-bad1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-nice
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gir1.2-gst-plugins-bad-1.0 gir1.2-nice-0.1
  chromium python3 util-linux iproute2 procps curl
"

missing=""
for package in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $package" ;;
  esac
done

if [ -z "$missing" ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "deploy/setup.sh: these Debian packages are missing:$missing" >&2
  echo "deploy/setup.sh: run this script as root to install them." >&2
  exit 1
fi

echo "deploy/setup.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
