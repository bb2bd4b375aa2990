#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs a command in a new network namespace whose only interface is loopback,
# so the hub, the camera simulator and Chromium share a private 127.0.0.1.
# Where that is not possible (not root, unshare or ip missing, or unshare not
# permitted), it prints a note and runs the command on the host's network instead.
#
# Usage: run-in-netns.sh COMMAND [ARG...]

set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi

if [ "${CIMS_IN_NETNS:-}" = "1" ]; then
    # Inside the namespace made below: bring loopback up, then run the command.
    unset CIMS_IN_NETNS
    ip link set lo up
    exec "$@"
fi

if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 \
        && command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
    CIMS_IN_NETNS=1 exec unshare -n "$0" "$@"
fi

echo "note: cannot create a network namespace here (needs root, unshare and ip);" \
     "running on the host's network" >&2
exec "$@"
