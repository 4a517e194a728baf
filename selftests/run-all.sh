#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# run-all.sh: what "make check" runs after "make deps".
#
#   1. build everything (make all)
#   2. host tests of libvmig: make -C selftests/libvmig run (prints TAP)
#   3. the VM tests: selftests/vm/run-vm.sh
#   4. checkpatch (counts as one test)
#
# Each part's output is shown and kept in build/logs/<run>/<part>.log
# (build/logs/latest points to the newest run; several runs may share a
# tree: each logs in its own directory, and the build step is serialized
# with a lock).  Every TAP
# result line ("ok N ..." / "not ok N ...") counts, nested per-test lines
# ("# ok N ...", see count()) too; "ok ... # SKIP" counts as skipped.  A part that fails without a "not ok" line of its own (a build
# error, a crash) counts as one failure.  The last line is always
# "N passed, N failed"; the exit status is non-zero if anything failed.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
MAKE=${MAKE:-make}
cd "$TOP"
mkdir -p "$BUILD/logs"
LOGDIR=$(mktemp -d "$BUILD/logs/$(date +%Y%m%d-%H%M%S).XXXX")
ln -sfn "$(basename "$LOGDIR")" "$BUILD/logs/latest"
# keep the logs of the last 10 runs
find "$BUILD/logs" -mindepth 1 -maxdepth 1 -type d -name '2*' | sort | head -n -10 |
	xargs -r rm -rf

npass=0
nfail=0
nskip=0
failed=0
t_start=$EPOCHREALTIME

elapsed() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'
}

# count LOG: add LOG's TAP result lines to the totals; its failures in $failed.
# A program's own TAP may be nested as "# " comments before its result line
# (kselftest's runner style, e.g. "make -C selftests/libvmig run"): then its
# per-test lines count, and its result line only when it failed without a
# failing test line of its own (a crash).
count() {
	local p f s
	read -r p f s < <(awk '
		function result(line, lvl) {
			if (line ~ /^not ok /)
				return "fail"
			if (tolower(line) ~ /#[[:space:]]*skip/)
				return "skip"
			return "pass"
		}
		/^# (not )?ok [0-9]+ / {
			r = result(substr($0, 3)); inner[r]++; ninner++; next
		}
		/^(not )?ok [0-9]+ / {
			r = result($0)
			if (ninner == 0)
				total[r]++
			else {
				for (k in inner)
					total[k] += inner[k]
				if (r == "fail" && inner["fail"] == 0)
					total["fail"]++
			}
			delete inner; ninner = 0
		}
		END { print total["pass"] + 0, total["fail"] + 0, total["skip"] + 0 }
	' "$1")
	npass=$((npass + p))
	nfail=$((nfail + f))
	nskip=$((nskip + s))
	failed=$f
}

# part NAME SHOW CMD...: run CMD, output to build/logs/NAME.log and, if
# SHOW is "show", to stdout as it comes; "quiet" shows it only on failure.
# Returns CMD's exit status.
part() {
	local name=$1 show=$2 log=$LOGDIR/$1.log rc t0
	shift 2
	t0=$EPOCHREALTIME
	echo "# ===== $name: $*"
	set +e
	if [[ $show == show ]]; then
		"$@" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	else
		"$@" >"$log" 2>&1
		rc=$?
	fi
	set -e
	count "$log"
	if [[ $rc -ne 0 ]]; then
		[[ $show == show ]] || tail -n 200 "$log"
		if [[ $failed -eq 0 ]]; then
			echo "not ok 1 $name # exit status $rc (log: $log)"
			nfail=$((nfail + 1))
		fi
	fi
	echo "# ===== $name: exit status $rc, $(elapsed "$t0" "$EPOCHREALTIME") s"
	return "$rc"
}

jobs=()
if [[ ${MAKEFLAGS:-} != *j* ]]; then
	jobs=(-j"$(nproc)")
fi

built=1
part build quiet flock "$BUILD/.build.lock" \
	"$MAKE" --no-print-directory "${jobs[@]}" all || built=0

if [[ $built -eq 0 ]]; then
	echo "# host tests and VM tests skipped: the build failed"
else
	if [[ -f selftests/libvmig/Makefile ]] &&
	   grep -qE '^run[[:space:]]*:' selftests/libvmig/Makefile; then
		part host-tests show "$MAKE" --no-print-directory -s -C selftests/libvmig run || true
	else
		echo "# host tests skipped: selftests/libvmig has no 'run' target yet"
	fi
	VM_LOG=$LOGDIR/vm-console.log part vm-tests show "$TOP/selftests/vm/run-vm.sh" || true
fi

if part checkpatch show "$MAKE" --no-print-directory -s checkpatch; then
	echo "ok 1 checkpatch"
	npass=$((npass + 1))
fi

echo "# make check: $nskip skipped, $(elapsed "$t_start" "$EPOCHREALTIME") s; logs in $LOGDIR"
echo "$npass passed, $nfail failed"
[[ $nfail -eq 0 ]]
