#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# checkpatch.sh CHECKPATCH_PL FILE...
#
# Run checkpatch.pl --strict --no-tree -f over the files; fail on any error,
# warning or check.  The output ends with "checkpatch: clean" or
# "checkpatch: FAILED".
set -euo pipefail

checkpatch=$1
shift
if [[ $# -eq 0 ]]; then
	echo "checkpatch: no files to check"
	exit 0
fi

rc=0
out=$(perl "$checkpatch" --strict --no-tree --color=never -f "$@" 2>&1) || rc=$?
printf '%s\n' "$out"
# Every file gets a "total: 0 errors, 0 warnings, 0 checks, ..." line.
if [[ $rc -ne 0 ]] || grep -E '^total: ' <<<"$out" | grep -qvE '^total: 0 errors, 0 warnings, 0 checks,'; then
	echo "checkpatch: FAILED"
	exit 1
fi
echo "checkpatch: clean ($# files)"
