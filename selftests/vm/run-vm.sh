#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-vm.sh: boot Debian's 6.12 kernel in qemu (TCG) with a busybox initramfs
# holding vfio, mdev, kvm, vfio-migsim.ko and the test programs, run them,
# and judge the run.
#
#   run-vm.sh                    vm_sanity, then every program in
#                                build/selftests/migsim/tests.list
#   run-vm.sh NAME...            vm_sanity, then the named programs
#   run-vm.sh --args 'ARGS' NAME  ... passing ARGS (e.g. '-t test') to them
#   run-vm.sh --demo             vm_sanity, then selftests/vm/demo.sh
#   run-vm.sh --shell            vm_sanity, then an interactive shell
#
# Environment: KVER (default: newest installed 6.12.*-amd64), VM_MEM (4G),
# VM_SMP (2; 1 for --demo), VM_TIMEOUT (seconds, 1200), VM_APPEND (extra kernel
# parameters), DEMO_SIZE (256M), MIGSIM_PARAMS (vfio-migsim.ko's module
# parameters, default "default_state_size=1M"), BUILD (default: <repo>/build), VM_LOG
# (where the console log is kept, default build/vm/console.log).
#
# Several runs may share a build directory: each packs and logs in its own
# build/vm/run.XXXXXX/ (removed at the end); only the distro part of the
# initramfs is shared (build/vm/base-<key>.cpio, written atomically).
#
# Every TAP line of the test programs is passed through.  After the run the
# script prints its own checks as TAP lines ("ok N vm: ..."/"not ok N vm:
# ...") and exits non-zero when a test failed, a program crashed or exited
# non-zero without a failing test line, vfio-migsim failed to load or
# unload, the kernel log has a warning/BUG/oops/lockdep/KASAN/UBSAN report,
# or the VM did not finish in time.  The full console log is kept in
# build/vm/console.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
VMDIR=$BUILD/vm
KVER=${KVER:-$(find /lib/modules -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null |
	grep -E '^6\.12\..*-amd64$' | sort -V | tail -1 || true)}
VM_MEM=${VM_MEM:-4G}
VM_SMP=${VM_SMP:-}
VM_TIMEOUT=${VM_TIMEOUT:-1200}
VM_APPEND=${VM_APPEND:-}

MIGSIM_KO=$TOP/kernel/vfio-migsim/vfio-migsim.ko
SANITY=$BUILD/selftests/vm/vm_sanity
KVM_HOLD=$BUILD/selftests/vm/kvm_hold
MIGSIM_TESTS=$BUILD/selftests/migsim
VMIGCTL=$BUILD/tools/vmigctl
# distro modules the VM needs besides vfio-migsim's own dependencies
BASE_MODULES=(vfio_iommu_type1 mdev kvm_amd)
BASE_FORMAT=1

die() {
	echo "run-vm: $*" >&2
	exit 1
}

usage() {
	sed -n '4,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	exit 2
}

mode=tests
test_args=
tests=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--shell) mode=shell ;;
	--demo) mode=demo ;;
	--args)
		[[ $# -ge 2 ]] || usage
		test_args=$2
		shift
		;;
	-h | --help) usage ;;
	-*) usage ;;
	*) tests+=("$1") ;;
	esac
	shift
done
if [[ ${#tests[@]} -gt 0 && $mode != tests ]]; then
	die "program names and --$mode do not mix"
fi
# The demo boots one vCPU.  With two, its part 3 (a postcopy whose source
# stops a running nested guest) failed 3 times in 12 runs under TCG: twice
# the guest kernel panicked ("corrupted stack end detected inside
# scheduler") as the thread that had run the guest's vCPU exited, once
# that vCPU ended in an error at the switchover.  On one vCPU, 8 runs of 8
# passed (its part 2 then dirties less, see demo.sh).  The
# tests keep two vCPUs for their races; see kvm_hold.c for the part of
# this that is understood.
if [[ -z $VM_SMP ]]; then
	if [[ $mode == demo ]]; then
		VM_SMP=1
	else
		VM_SMP=2
	fi
fi

[[ -n $KVER ]] || die "no Debian 6.12 kernel installed (run: make deps)"
KERNEL=/boot/vmlinuz-$KVER
[[ -r $KERNEL ]] || die "$KERNEL missing or unreadable (run: make deps)"
[[ -x $SANITY ]] || die "$SANITY missing (run: make)"
for tool in qemu-system-x86_64 cpio modprobe modinfo xz busybox; do
	command -v "$tool" >/dev/null || die "$tool not found (run: make deps)"
done
BUSYBOX=$(command -v busybox)

mkdir -p "$VMDIR"
RUNDIR=$(mktemp -d "$VMDIR/run.XXXXXX")
trap 'rm -rf "$RUNDIR"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
VM_LOG=${VM_LOG:-$VMDIR/console.log}
LOG=$RUNDIR/console.log

# ------------------------------------------------------------ module list
# The distro modules to insmod, in order: those of BASE_MODULES and of
# vfio-migsim.ko's "depends", with all their dependencies.
resolve_modules() {
	local -a names=("${BASE_MODULES[@]}")
	local deps
	if [[ -f $MIGSIM_KO ]]; then
		deps=$(modinfo -F depends "$MIGSIM_KO")
		if [[ -n $deps ]]; then
			local -a more
			IFS=, read -r -a more <<<"$deps"
			names+=("${more[@]}")
		fi
	fi
	# "insmod /path/x.ko.xz [params]" lines; "builtin x" lines are skipped
	modprobe -S "$KVER" -a --show-depends "${names[@]}" |
		awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# pack_dir DIR OUT: a newc cpio of DIR, owned by root
pack_dir() {
	(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --quiet) >"$2.tmp"
	mv "$2.tmp" "$2"
}

# ------------------------------------------------------------ base image
# busybox + decompressed distro modules; cached in build/vm/base-<key>.cpio.
build_base() {
	local root ko dest rel
	root=$(mktemp -d "$VMDIR/base.XXXXXX")
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,vmig}
	cp "$BUSYBOX" "$root/bin/busybox"
	# a link over bin/busybox itself would loop (ELOOP): skip what exists
	while read -r applet; do
		[[ -n $applet ]] || continue
		[[ -e $root/$applet || -L $root/$applet ]] && continue
		mkdir -p "$root/$(dirname "$applet")"
		ln -s /bin/busybox "$root/$applet"
	done < <("$root/bin/busybox" --list-full)
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"

	: >"$root/vmig/modules.list"
	while read -r ko; do
		rel=${ko#/lib/modules/"$KVER"/}
		rel=${rel%.xz}
		rel=${rel%.zst}
		rel=${rel%.gz}
		dest=/lib/modules/$KVER/$rel
		mkdir -p "$root/$(dirname "$dest")"
		case $ko in
		*.xz) xz -dc "$ko" >"$root$dest" ;;
		*.zst) zstd -qdc "$ko" >"$root$dest" ;;
		*.gz) gzip -dc "$ko" >"$root$dest" ;;
		*) cp "$ko" "$root$dest" ;;
		esac
		echo "$dest" >>"$root/vmig/modules.list"
	done <<<"$MODULES"
	pack_dir "$root" "$root.cpio"
	mv "$root.cpio" "$BASE"
	rm -rf "$root"
}

# ------------------------------------------------------------ per-run image
# copy_libs ELF ROOT: the shared libraries ldd lists for ELF, at their own
# paths; those outside the system directories also go to /vmig/lib.
copy_libs() {
	local elf=$1 root=$2 out line lib
	if ! out=$(ldd "$elf" 2>&1); then
		[[ $out == *"not a dynamic executable"* ]] && return 0
		die "ldd $elf: $out"
	fi
	while read -r line; do
		case $line in
		*"=> not found"*) die "$elf: ${line%% *} not found" ;;
		*"=> /"*) lib=${line#*=> } ;;
		/*) lib=$line ;;
		*) continue ;;
		esac
		lib=${lib%% (*}
		if [[ ! -e $root$lib ]]; then
			mkdir -p "$root$(dirname "$lib")"
			cp -L "$lib" "$root$lib"
		fi
		case $lib in
		/lib/* | /lib64/* | /usr/lib/* | /usr/lib64/*) ;;
		*)
			mkdir -p "$root/vmig/lib"
			cp -L "$lib" "$root/vmig/lib/"
			echo /vmig/lib >"$root/vmig/lib.path"
			;;
		esac
	done <<<"$out"
}

elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

is_elf() {
	[[ $(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ') == '177ELF' ]]
}

build_run() {
	local root=$RUNDIR/root f
	mkdir -p "$root/vmig/tests/vm" "$root/vmig/tests/migsim" "$root/usr/bin"
	install -m 755 "$HERE/init.sh" "$root/init"
	install -m 755 "$HERE/demo.sh" "$root/vmig/demo.sh"
	{
		printf 'MODE=%s\n' "$mode"
		printf "TESTS='%s'\n" "${tests[*]}"
		printf "TEST_ARGS='%s'\n" "${test_args//\'/}"
		printf "DEMO_SIZE='%s'\n" "${DEMO_SIZE:-256M}"
		# a 64 MiB default state makes every instance cost ~1 s to
		# create under TCG; the tests size what they need themselves
		printf "MIGSIM_PARAMS='%s'\n" \
			"${MIGSIM_PARAMS-default_state_size=1M}"
	} >"$root/vmig/run.conf"

	if [[ -f $MIGSIM_KO ]]; then
		cp "$MIGSIM_KO" "$root/vmig/vfio-migsim.ko"
	fi
	cp "$SANITY" "$root/vmig/tests/vm/"
	copy_libs "$SANITY" "$root"
	if [[ -f $KVM_HOLD ]]; then
		cp "$KVM_HOLD" "$root/vmig/tests/vm/"
	fi
	if [[ -d $MIGSIM_TESTS ]]; then
		for f in "$MIGSIM_TESTS"/*; do
			[[ -f $f ]] || continue
			cp -p "$f" "$root/vmig/tests/migsim/"
			if [[ -x $f ]] && is_elf "$f"; then
				copy_libs "$f" "$root"
			fi
		done
	fi
	if [[ -x $VMIGCTL ]]; then
		cp "$VMIGCTL" "$root/usr/bin/vmigctl"
		copy_libs "$VMIGCTL" "$root"
	fi
	pack_dir "$root" "$RUNDIR/run.cpio"
	rm -rf "$root"
}

t0=$EPOCHREALTIME
MODULES=$(resolve_modules)
[[ -n $MODULES ]] || die "modprobe found no modules for $KVER"
key=$(printf '%s\n' "format=$BASE_FORMAT" "$KVER" "$MODULES" \
	"$(stat -c '%s %Y' "$BUSYBOX")" | sha256sum | cut -d' ' -f1)
BASE=$VMDIR/base-${key:0:16}.cpio
if [[ ! -f $BASE ]]; then
	build_base
fi
touch "$BASE"
# bases of other kernels or module sets, and leftovers of killed runs,
# that nobody touched for a day
find "$VMDIR" -mindepth 1 -maxdepth 1 \( -name 'base-*.cpio' -o -name 'base.*' -o -name 'run.*' \) \
	! -newermt '1 day ago' -exec rm -rf {} + 2>/dev/null || true
build_run
cat "$BASE" "$RUNDIR/run.cpio" >"$RUNDIR/initrd.cpio"
t1=$EPOCHREALTIME
if [[ ! -f $MIGSIM_KO ]]; then
	echo "# run-vm: $MIGSIM_KO not built; running without vfio-migsim"
fi
printf '# run-vm: initramfs packed in %.1f s; booting %s (%s, %s CPUs)\n' \
	"$(elapsed "$t0" "$t1")" "$KVER" "$VM_MEM" "$VM_SMP"

qemu=(qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP"
	-nographic -no-reboot -nic none
	-kernel "$KERNEL" -initrd "$RUNDIR/initrd.cpio"
	# maxcpus=1: init.sh onlines the other CPUs once kvm_hold has
	# created its KVM VM (a TCG workaround, see selftests/vm/kvm_hold.c)
	-append "console=ttyS0 panic=-1 quiet maxcpus=1 $VM_APPEND")

if [[ $mode == shell ]]; then
	echo "# run-vm: Ctrl-A X kills the VM; 'exit' in the shell ends the run"
	"${qemu[@]}"
	exit
fi

# ------------------------------------------------------------ run
# console -> strip CR and terminal escapes -> log; show all but the dmesg dump
set +e
# --foreground: stay in our process group, so that Ctrl-C or killing the
# caller's group stops qemu too
timeout --foreground --kill-after=10 "$VM_TIMEOUT" "${qemu[@]}" </dev/null 2>&1 |
	sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' |
	tee "$LOG" |
	awk '/^# vmig: dmesg begin/ { hide = 1 }
	     !hide { print; fflush() }
	     /^# vmig: dmesg end/ { hide = 0 }'
qemu_rc=${PIPESTATUS[0]}
set -e
t2=$EPOCHREALTIME

# ------------------------------------------------------------ judge
# Count the TAP result lines of every program, find programs that crashed
# or did not finish, and print the runner's own checks.
npass=0
nfail=0
nskip=0
checks=0
check() { # check ok|fail|skip DESCRIPTION [REASON]
	checks=$((checks + 1))
	case $1 in
	ok) echo "ok $checks vm: $2"; npass=$((npass + 1)) ;;
	skip) echo "ok $checks vm: $2 # SKIP ${3:-}"; nskip=$((nskip + 1)) ;;
	*) echo "not ok $checks vm: $2${3:+ - $3}"; nfail=$((nfail + 1)) ;;
	esac
}

echo "# run-vm: runner checks"
# one line per program: NAME PASS FAIL SKIP PLANNED RC ("-" if it never exited)
progs=$(awk '
	function flush() {
		if (name != "")
			print name, pass, fail, skip, plan, "-"
		name = ""
	}
	/^# vmig: run / { flush(); name = $4; pass = fail = skip = 0; plan = -1; next }
	/^# vmig: exit / {
		if (name != "")
			print name, pass, fail, skip, plan, $5
		name = ""
		next
	}
	name == "" { next }
	/^1\.\.[0-9]+/ { if (plan < 0) { split($1, p, "\\.\\."); plan = p[2] } next }
	/^not ok [0-9]+ / { fail++; next }
	/^ok [0-9]+ .*# *[Ss][Kk][Ii][Pp]/ { skip++; next }
	/^ok [0-9]+ / { pass++; next }
	END { flush() }' "$LOG")

while read -r name pass fail skip plan prc; do
	[[ -n ${name:-} ]] || continue
	npass=$((npass + pass))
	nfail=$((nfail + fail))
	nskip=$((nskip + skip))
	if [[ $prc == - ]]; then
		check fail "$name finished" "it never exited (VM died or timed out)"
	elif [[ $prc -ge 128 ]]; then
		check fail "$name finished" "killed by signal $((prc - 128))"
	elif [[ $prc -ne 0 && $fail -eq 0 ]]; then
		if [[ $prc -eq 4 && $pass -eq 0 ]]; then
			check skip "$name" "exited with KSFT_SKIP"
		else
			check fail "$name finished" "exit status $prc without a failing test line"
		fi
	elif [[ $plan -ge 0 && $((pass + fail + skip)) -lt $plan ]]; then
		check fail "$name finished" "$((pass + fail + skip)) of $plan results"
	elif [[ $prc -eq 0 && $plan -lt 0 && $((pass + fail + skip)) -eq 0 && $name != demo ]]; then
		check fail "$name finished" "exit status 0 but no TAP output"
	elif [[ $name == demo ]]; then
		check ok "demo"
	fi
done <<<"$progs"

while read -r name; do
	[[ -n $name ]] && check fail "$name found" "no such test program in the VM"
done < <(awk '/^# vmig: missing / { print $4 }' "$LOG")

insmod_failed=$(awk '/^# vmig: insmod .* failed/ { print $4 }' "$LOG" | tr '\n' ' ')
if grep -q '^# vmig: init started' "$LOG"; then
	if [[ -n $insmod_failed ]]; then
		check fail "distro modules loaded" "insmod failed: $insmod_failed"
	else
		check ok "distro modules loaded"
	fi
fi

if grep -q '^# vmig: migsim loaded' "$LOG"; then
	check ok "vfio-migsim loaded"
	if grep -q '^# vmig: rmmod ok' "$LOG"; then
		check ok "vfio-migsim unloaded"
	elif grep -q '^# vmig: rmmod failed' "$LOG"; then
		check fail "vfio-migsim unloaded" "$(grep -m1 '^# vmig: rmmod failed' "$LOG")"
	else
		check fail "vfio-migsim unloaded" "rmmod not reached or did not return"
	fi
elif grep -q '^# vmig: migsim insmod-failed' "$LOG"; then
	check fail "vfio-migsim loaded" "$(grep -m1 '^# vmig: migsim insmod-failed' "$LOG")"
elif grep -q '^# vmig: migsim absent' "$LOG"; then
	check skip "vfio-migsim loaded" "vfio-migsim.ko not built"
fi

# The kernel log: the dmesg dump, and the console for what killed the VM.
BAD_RE='(^|[^[:alnum:]_])(WARNING: |BUG: |kernel BUG|Oops|general protection fault|possible circular locking|possible recursive locking|inconsistent lock state|INFO: |UBSAN:|Call Trace|Kernel panic|RIP: |[Hh]ardware [Ee]rror)'
# benign lines that happen to match: CPU mitigation notices under TCG
BENIGN_RE='(RETBleed|Spectre|MDS|TAA|MMIO Stale Data|SRBDS|GDS|Speculative|mitigation|TSC_DEADLINE)'
dmesg_log=$(awk '/^# vmig: dmesg begin/ { on = 1; next }
		  /^# vmig: dmesg end/ { on = 0 }
		  on' "$LOG")
dmesg_bad=$(grep -E "$BAD_RE" <<<"$dmesg_log" | grep -vE "$BENIGN_RE" || true)
console_bad=$(grep -E 'Kernel panic|end Kernel panic' "$LOG" || true)
if [[ -n $dmesg_bad || -n $console_bad ]]; then
	check fail "kernel log clean" "$(head -n1 <<<"${dmesg_bad:-$console_bad}")"
	echo "# run-vm: kernel log from the first report (full log: $VM_LOG):"
	first=$(head -n1 <<<"${dmesg_bad:-$console_bad}")
	if [[ -n $dmesg_bad ]]; then
		grep -F -A 200 -m1 -- "$first" <<<"$dmesg_log" | head -n 200 | sed 's/^/#   /'
	else
		tail -n 60 "$LOG" | sed 's/^/#   /'
	fi
elif grep -q '^# vmig: dmesg end' "$LOG"; then
	check ok "kernel log clean"
fi

if [[ $qemu_rc -eq 124 || $qemu_rc -eq 137 ]]; then
	check fail "VM finished" "timed out after ${VM_TIMEOUT}s"
elif ! grep -q '^# vmig: done' "$LOG"; then
	check fail "VM finished" "the VM stopped early (qemu exit status $qemu_rc)"
	echo "# run-vm: last console lines:"
	tail -n 40 "$LOG" | sed 's/^/#   /'
elif [[ $qemu_rc -ne 0 ]]; then
	check fail "VM finished" "qemu exit status $qemu_rc"
else
	check ok "VM finished"
fi

mkdir -p "$(dirname "$VM_LOG")"
cp "$LOG" "$VM_LOG.tmp.$$"
mv "$VM_LOG.tmp.$$" "$VM_LOG"
printf '# run-vm: pass:%d fail:%d skip:%d; %.1f s in the VM; console log: %s\n' \
	"$npass" "$nfail" "$nskip" "$(elapsed "$t1" "$t2")" "$VM_LOG"
[[ $nfail -eq 0 ]]
