#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# demo.sh: runs inside the test VM (make demo).
#  1. Two vfio-migsim instances: the source gets DEMO_SIZE (default 256M) of
#     state, "vmigctl migrate-local" moves it into the destination through
#     the data fds, and the checksums are compared.
#  2. Two source instances of 64M that keep dirtying their state (2 MB/s on
#     a fifth of it) migrate to two destination instances between two
#     processes, "vmigctl migrate send" and "recv", over 4 authenticated
#     channels on a UNIX socket, with precopy.  The same session carries a
#     guest's RAM (--guest): the source runs a 32 MiB KVM test guest whose
#     vCPU writes 500 pages/s (nested KVM: /dev/kvm comes from kvm_amd),
#     tracked with the KVM dirty ring and paused at the switchover once
#     the convergence model says the rest fits the 300 ms limit.  The VM
#     has one vCPU (run-vm.sh), which carries some 15-20 MB/s: with 8 MB/s
#     per device and 2000 pages/s, the rates of two vCPUs, part 2 did not
#     converge (1.6 s of downtime once); --precopy-max-ms 10000 leaves
#     room.  The devices' checksums and the guest RAM's SHA-256 are
#     compared.
#  3. Postcopy: a 32 MiB guest writing 20000 pages/s and one dirtying 32M
#     device, with the RAM precopy limited to 4 MB/s and a downtime limit
#     of 5 ms: precopy cannot converge, the session switches over to
#     postcopy (on the STUCK verdict, or at --precopy-max-ms), the device
#     state goes over with the session and the rest of the RAM by postcopy
#     on the same socket.  The device checksums and the guest RAM's
#     SHA-256 (the destination's after postcopy) are compared.
set -eu

TYPE=/sys/class/mdev_bus/migsim/mdev_supported_types/migsim-v1
DEVS=/sys/bus/mdev/devices
SIZE=${DEMO_SIZE:-256M}
GUEST_SIZE=32M
GUEST_RATE=500
PC_RATE=20000

if [ ! -w "$TYPE/create" ]; then
	echo "demo: $TYPE/create missing: vfio-migsim is not loaded" >&2
	exit 1
fi
if ! command -v vmigctl >/dev/null; then
	echo "demo: vmigctl is not built (tools/vmigctl)" >&2
	exit 1
fi
if [ ! -c /dev/kvm ]; then
	echo "demo: /dev/kvm missing: part 2's guest needs KVM (kvm_amd)" >&2
	exit 1
fi

src=$(cat /proc/sys/kernel/random/uuid)
dst=$(cat /proc/sys/kernel/random/uuid)
net_src="$(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid)"
net_dst="$(cat /proc/sys/kernel/random/uuid) $(cat /proc/sys/kernel/random/uuid)"
pc_src=$(cat /proc/sys/kernel/random/uuid)
pc_dst=$(cat /proc/sys/kernel/random/uuid)

cleanup() {
	# shellcheck disable=SC2086 # lists of UUIDs
	for u in "$src" "$dst" $net_src $net_dst "$pc_src" "$pc_dst"; do
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
echo "demo: part 2: two dirtying devices and a $GUEST_SIZE guest that writes" \
	"$GUEST_RATE pages/s, between two processes, 4 channels"
# shellcheck disable=SC2086 # lists of UUIDs
for u in $net_src $net_dst; do
	echo "$u" >"$TYPE/create"
done
for u in $net_src; do
	echo 64M >"$DEVS/$u/migsim/state_size"
	echo 200 >"$DEVS/$u/migsim/hot_set"
	echo 2M >"$DEVS/$u/migsim/dirty_rate"
done
head -c 32 /dev/urandom >/tmp/demo.secret
sock=unix:/tmp/demo.sock
# shellcheck disable=SC2086
vmigctl migrate recv --listen "$sock" --secret-file /tmp/demo.secret \
	--guest "$GUEST_SIZE" $net_dst >/tmp/demo.recv 2>&1 &
recv=$!
sleep 1
# shellcheck disable=SC2086
if ! vmigctl migrate send --connect "$sock" --secret-file /tmp/demo.secret \
	--channels 4 --guest "$GUEST_SIZE,$GUEST_RATE" --precopy-max-ms 10000 \
	$net_src \
	>/tmp/demo.send 2>&1; then
	cat /tmp/demo.send >&2
	echo "demo: FAILED: migrate send" >&2
	wait "$recv" || true
	cat /tmp/demo.recv >&2
	exit 1
fi
cat /tmp/demo.send
if ! wait "$recv"; then
	cat /tmp/demo.recv >&2
	echo "demo: FAILED: migrate recv" >&2
	exit 1
fi
cat /tmp/demo.recv
# shellcheck disable=SC2086 # a list of UUIDs
set -- $net_dst
for u in $net_src; do
	# The source's checksum as "migrate send" read it with the device
	# stopped, after the switchover: once send has exited and closed the
	# device, the driver puts it back to RUNNING and it dirties again.
	a=$(awk -v u="$u" '$2 == u {
		for (i = 3; i < NF; i++) if ($i == "checksum") print $(i + 1) }' \
		/tmp/demo.send)
	b=$(cat "$DEVS/$1/migsim/checksum")
	shift
	echo "demo: source $a (stopped) destination $b"
	if [ "$a" != "$b" ]; then
		echo "demo: FAILED: checksums differ" >&2
		exit 1
	fi
done
# the guest RAM's SHA-256 (its first 16 hex digits): the source's with
# its vCPU stopped, the destination's with every page in
guest_sum() {
	awk '$1 == "guest" && $2 == "sha256:" { print $3 }' "$1"
}
a=$(guest_sum /tmp/demo.send)
b=$(guest_sum /tmp/demo.recv)
echo "demo: guest RAM sha256: source $a destination $b"
if [ -z "$a" ] || [ "$a" != "$b" ]; then
	echo "demo: FAILED: guest RAM checksums differ" >&2
	exit 1
fi
echo "demo: part 2: checksums match (devices and guest RAM)"

echo
echo "demo: part 3: postcopy: a $GUEST_SIZE guest that writes $PC_RATE pages/s" \
	"and a dirtying device, RAM precopy at 4 MB/s, downtime limit 5 ms"
echo "$pc_src" >"$TYPE/create"
echo "$pc_dst" >"$TYPE/create"
echo 32M >"$DEVS/$pc_src/migsim/state_size"
echo 200 >"$DEVS/$pc_src/migsim/hot_set"
echo 8M >"$DEVS/$pc_src/migsim/dirty_rate"
sock=unix:/tmp/demo-pc.sock
vmigctl migrate recv --listen "$sock" --secret-file /tmp/demo.secret \
	--guest "$GUEST_SIZE" --postcopy "$pc_dst" >/tmp/demo-pc.recv 2>&1 &
recv=$!
sleep 1
if ! vmigctl migrate send --connect "$sock" --secret-file /tmp/demo.secret \
	--channels 2 --guest "$GUEST_SIZE,$PC_RATE" --postcopy \
	--ram-bandwidth 4M/s --downtime 5 --precopy-max-ms 20000 "$pc_src" \
	>/tmp/demo-pc.send 2>&1; then
	cat /tmp/demo-pc.send >&2
	echo "demo: FAILED: migrate send --postcopy" >&2
	wait "$recv" || true
	cat /tmp/demo-pc.recv >&2
	exit 1
fi
cat /tmp/demo-pc.send
if ! wait "$recv"; then
	cat /tmp/demo-pc.recv >&2
	echo "demo: FAILED: migrate recv --postcopy" >&2
	exit 1
fi
cat /tmp/demo-pc.recv
a=$(awk -v u="$pc_src" '$2 == u {
	for (i = 3; i < NF; i++) if ($i == "checksum") print $(i + 1) }' \
	/tmp/demo-pc.send)
b=$(cat "$DEVS/$pc_dst/migsim/checksum")
echo "demo: device: source $a (stopped) destination $b"
if [ "$a" != "$b" ]; then
	echo "demo: FAILED: checksums differ" >&2
	exit 1
fi
a=$(guest_sum /tmp/demo-pc.send)
b=$(guest_sum /tmp/demo-pc.recv)
echo "demo: guest RAM sha256: source $a destination $b (after postcopy)"
if [ -z "$a" ] || [ "$a" != "$b" ]; then
	echo "demo: FAILED: guest RAM checksums differ" >&2
	exit 1
fi
if ! grep -q '^  postcopy:' /tmp/demo-pc.recv; then
	echo "demo: FAILED: the destination ran no postcopy" >&2
	exit 1
fi
echo "demo: part 3: checksums match (device and guest RAM, by postcopy)"
