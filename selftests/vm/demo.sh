#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# demo.sh: runs inside the test VM (make demo).
#  1. Two vfio-migsim instances: the source gets DEMO_SIZE (default 256M) of
#     state, "vmigctl migrate-local" moves it into the destination through
#     the data fds, and the checksums are compared.
#  2. Two source instances of 64M that keep dirtying their state (8 MB/s on
#     a fifth of it) migrate to two destination instances between two
#     processes, "vmigctl migrate send" and "recv", over 4 authenticated
#     channels on a UNIX socket, with precopy; checksums are compared.
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
net_src="$(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid)"
net_dst="$(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid)"

cleanup() {
	# shellcheck disable=SC2086 # lists of UUIDs
	for u in "$src" "$dst" $net_src $net_dst; do
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

echo
echo "demo: part 2: two dirtying devices between two processes, 4 channels"
# shellcheck disable=SC2086 # lists of UUIDs
for u in $net_src $net_dst; do
	echo "$u" >"$TYPE/create"
done
for u in $net_src; do
	echo 64M >"$DEVS/$u/migsim/state_size"
	echo 200 >"$DEVS/$u/migsim/hot_set"
	echo 8M >"$DEVS/$u/migsim/dirty_rate"
done
head -c 32 /dev/urandom >/tmp/demo.secret
sock=unix:/tmp/demo.sock
# shellcheck disable=SC2086
vmigctl migrate recv --listen "$sock" --secret-file /tmp/demo.secret \
	$net_dst >/tmp/demo.recv 2>&1 &
recv=$!
sleep 1
# shellcheck disable=SC2086
if ! vmigctl migrate send --connect "$sock" --secret-file /tmp/demo.secret \
	--channels 4 $net_src; then
	echo "demo: FAILED: migrate send" >&2
	wait "$recv" || true
	cat /tmp/demo.recv >&2
	exit 1
fi
if ! wait "$recv"; then
	cat /tmp/demo.recv >&2
	echo "demo: FAILED: migrate recv" >&2
	exit 1
fi
cat /tmp/demo.recv
set -- $net_dst
for u in $net_src; do
	# the sources are stopped since the switchover: their state is final
	a=$(cat "$DEVS/$u/migsim/checksum")
	b=$(cat "$DEVS/$1/migsim/checksum")
	shift
	echo "demo: source $a destination $b"
	if [ "$a" != "$b" ]; then
		echo "demo: FAILED: checksums differ" >&2
		exit 1
	fi
done
echo "demo: part 2: checksums match"
