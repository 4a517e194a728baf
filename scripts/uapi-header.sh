#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# uapi-header.sh UNIFDEF INFILE OUTFILE
#
# Turn one kernel uapi header (from the linux-headers-*-common package) into a
# header usable from userspace, the way the kernel's own
# scripts/headers_install.sh does: drop __user/__force/__iomem and
# <linux/compiler.h>, and strip #ifdef __KERNEL__ sections with unifdef.
set -euo pipefail

if [[ $# -ne 3 ]]; then
	echo "usage: $0 UNIFDEF INFILE OUTFILE" >&2
	exit 2
fi
unifdef=$1 in=$2 out=$3
tmp="$out.tmp"
trap 'rm -f "$tmp"' EXIT

mkdir -p "$(dirname "$out")"
sed -E -e '
	s/([[:space:](])(__user|__force|__iomem)[[:space:]]/\1/g
	s/__attribute_const__([[:space:]]|$)/\1/g
	s@^#include <linux/compiler(|_types).h>@@
	s/(^|[^a-zA-Z0-9])__packed([^a-zA-Z0-9_]|$)/\1__attribute__((packed))\2/g
	s/(^|[[:space:](])(inline|asm|volatile)([[:space:](]|$)/\1__\2__\3/g
	s@#(ifndef|define|endif[[:space:]]*/[*])[[:space:]]*_UAPI@#\1 @
' "$in" > "$tmp"

# unifdef exits 0 (unchanged) or 1 (changed); 2 is an error.
rc=0
"$unifdef" -U__KERNEL__ -D__EXPORTED_HEADERS__ "$tmp" > "$out" || rc=$?
if [[ $rc -gt 1 ]]; then
	rm -f "$out"
	exit 1
fi
