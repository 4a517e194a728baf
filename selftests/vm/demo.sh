#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# demo.sh: runs inside the test VM (make demo).  Creates two vfio-migsim
# instances, gives the source DEMO_SIZE (default 256M) of state, migrates it
# to the destination with "vmigctl migrate-local" and compares checksums.
set -eu

TYPE=/sys/class/mdev_bus/migsim/mdev_supported_types/migsim-v1
DEVS=/sys/bus/mdev/devices
SIZE=${DEMO_SIZE:-256M}

if [ ! -w "$TYPE/create" ]; then
	echo "demo: $TYPE/create missing: vfio-migsim is not loaded" >&2
	exit 1
fi
if ! command -v vmigctl >/dev/null; then
	echo "demo: vmigctl is not built (tools/vmigctl)" >&2
	exit 1
fi

src=$(cat /proc/sys/kernel/random/uuid)
dst=$(cat /proc/sys/kernel/random/uuid)

cleanup() {
	for u in "$src" "$dst"; do
		if [ -e "$DEVS/$u/remove" ]; then
			echo 1 >"$DEVS/$u/remove" || echo "demo: removing $u failed" >&2
		fi
	done
}
trap cleanup EXIT

show() {
	printf '%-12s %s  state_size %s  checksum %s\n' "$1" "$2" \
		"$(cat "$DEVS/$2/migsim/state_size")" \
		"$(cat "$DEVS/$2/migsim/checksum")"
}

echo "$src" >"$TYPE/create"
echo "$dst" >"$TYPE/create"
echo "demo: setting the source's state to $SIZE"
echo "$SIZE" >"$DEVS/$src/migsim/state_size"

echo "demo: before migration"
show source "$src"
show destination "$dst"

echo "demo: vmigctl migrate-local $src $dst"
vmigctl migrate-local "$src" "$dst"

echo "demo: after migration"
show source "$src"
show destination "$dst"
if [ "$(cat "$DEVS/$src/migsim/checksum")" != "$(cat "$DEVS/$dst/migsim/checksum")" ]; then
	echo "demo: FAILED: checksums differ" >&2
	exit 1
fi
echo "demo: checksums match"
