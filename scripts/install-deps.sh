#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# install-deps.sh PACKAGE...
#
# Install, with apt-get, those of the given Debian packages that are not
# installed yet.  A fast no-op when everything is present.  Runs apt-get
# update only when something has to be installed.  Needs root (or sudo).
set -euo pipefail

[[ $# -gt 0 ]] || exit 0

# Every package that dpkg knows as fully installed ("ii").
declare -A installed=()
while read -r pkg status; do
	[[ $status == ii ]] && installed[$pkg]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true)

missing=()
for pkg in "$@"; do
	[[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null; then
		echo "deps: need root to install: ${missing[*]}" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "deps: installing ${missing[*]}"
log=$(mktemp /tmp/vmig-deps.XXXXXX)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update >"$log" 2>&1 ||
   ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y \
	--no-install-recommends install "${missing[@]}" >>"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get failed" >&2
	exit 1
fi
echo "deps: done"
