#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the test VM (busybox sh), packed by selftests/vm/run-vm.sh.
#
# Loads the distro modules listed in /vmig/modules.list and then
# /vmig/vfio-migsim.ko, runs the job /vmig/run.conf asks for (test programs,
# the demo or a shell), unloads vfio-migsim, prints the kernel log and powers
# off.  Lines starting with "# vmig: " are read by run-vm.sh on the host:
#
#   # vmig: init started
#   # vmig: insmod <module> failed rc=<rc>
#   # vmig: migsim loaded | migsim absent | migsim insmod-failed rc=<rc>
#   # vmig: run <name>          (a program's TAP output follows)
#   # vmig: exit <name> <rc> <seconds>s
#   # vmig: missing <name>
#   # vmig: rmmod ok | rmmod failed rc=<rc>
#   # vmig: dmesg begin ... # vmig: dmesg end
#   # vmig: done

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/shm /dev/pts /tmp
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# loopback TCP (vmigctl migrate send/recv over 127.0.0.1)
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up 2>/dev/null

say() {
	echo "# vmig: $*"
}

uptime_s() {
	cut -d' ' -f1 /proc/uptime
}

since() {
	awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }'
}

echo	# the firmware's last line has no newline
say "init started"

# MODE (tests | demo | shell), TESTS (program names), TEST_ARGS, DEMO_SIZE
MODE=tests
TESTS=
TEST_ARGS=
DEMO_SIZE=
MIGSIM_PARAMS=
# shellcheck source=/dev/null
. /vmig/run.conf
export DEMO_SIZE
if [ -f /vmig/lib.path ]; then
	LD_LIBRARY_PATH=$(cat /vmig/lib.path)
	export LD_LIBRARY_PATH
fi
export MIGSIM_IN_VM=1
# libvmig's guest RAM tests run 8 times smaller under TCG (test_scale.h)
VMIG_TEST_SCALE=8
export VMIG_TEST_SCALE

while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "$ko" || say "insmod $(basename "$ko") failed rc=$?"
done < /vmig/modules.list

migsim=0
if [ -f /vmig/vfio-migsim.ko ]; then
	# shellcheck disable=SC2086 # a list of module parameters
	if insmod /vmig/vfio-migsim.ko $MIGSIM_PARAMS; then
		migsim=1
		say "migsim loaded"
	else
		say "migsim insmod-failed rc=$?"
	fi
else
	say "migsim absent"
fi

# The VM boots with one CPU (maxcpus=1): one KVM VM is created and held
# for the whole run while no other CPU runs, then the others come online.
# See kvm_hold.c (a TCG workaround).
if [ -c /dev/kvm ] && [ -x /vmig/tests/vm/kvm_hold ]; then
	/vmig/tests/vm/kvm_hold || say "kvm_hold failed rc=$?"
fi
for cpu in /sys/devices/system/cpu/cpu[0-9]*/online; do
	[ -f "$cpu" ] || continue
	[ "$(cat "$cpu")" = 1 ] || echo 1 >"$cpu" || say "cannot online $cpu"
done
say "cpus online: $(cat /sys/devices/system/cpu/online)"

# run_prog NAME PATH [ARGS...]: run one program from its own directory
run_prog() {
	name=$1
	path=$2
	shift 2
	say "run $name"
	t0=$(uptime_s)
	(cd "$(dirname "$path")" && exec "$path" "$@") </dev/null
	rc=$?
	say "exit $name $rc $(since "$t0")s"
}

# find_prog NAME: print the program's path in the VM
find_prog() {
	for dir in /vmig/tests/vm /vmig/tests/migsim; do
		if [ -f "$dir/$1" ] && [ -x "$dir/$1" ]; then
			echo "$dir/$1"
			return 0
		fi
	done
	return 1
}

run_prog vm_sanity /vmig/tests/vm/vm_sanity

case $MODE in
tests)
	if [ -z "$TESTS" ] && [ -f /vmig/tests/migsim/tests.list ]; then
		TESTS=$(grep -v '^[[:space:]]*\(#\|$\)' /vmig/tests/migsim/tests.list)
	fi
	for t in $TESTS; do
		if p=$(find_prog "$t"); then
			# word splitting of TEST_ARGS is intended
			# shellcheck disable=SC2086
			run_prog "$t" "$p" $TEST_ARGS
		else
			say "missing $t"
		fi
	done
	;;
demo)
	say "run demo"
	t0=$(uptime_s)
	sh /vmig/demo.sh </dev/null
	rc=$?
	say "exit demo $rc $(since "$t0")s"
	;;
shell)
	echo
	echo "vfio-migsim test VM: tests in /vmig/tests, vmigctl in /usr/bin."
	echo "Leave with 'exit' (unloads vfio-migsim, prints the kernel log) or"
	echo "'poweroff -f'."
	setsid cttyhack sh -l
	;;
esac

if [ "$migsim" = 1 ]; then
	if rmmod vfio_migsim; then
		say "rmmod ok"
	else
		say "rmmod failed rc=$?"
	fi
fi

say "dmesg begin"
dmesg
say "dmesg end"
say "done"
poweroff -f
