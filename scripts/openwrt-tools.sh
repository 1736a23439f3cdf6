#!/usr/bin/env bash
# Builds OpenWrt's own package tools for the tests: opkg (24.10's pin), apk-tools 3.0.2 and
# uci/libuci (25.12's pins), from the sources in ../shared/openwrt (its build-tools.sh), into
# .cache/openwrt-tools/ (gitignored), plus OpenWrt's base-files scripts (lib/functions.sh, ...)
# unpacked beside them. Does nothing when they are already there (~30 s on 2 cores otherwise).
# Only the tests use them (test/helpers/openwrt-tools.ts); `make image` never does.
#
# Usage: scripts/openwrt-tools.sh [DEST]
#   OPENWRT_SHARED=DIR   the shared/openwrt dir (default: ../shared/openwrt beside the checkout,
#                        else ../../shared/openwrt)
# Exits 0 without building when the shared dir is absent: the tests then skip with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="$(realpath -m "${1:-${OPENWRT_TOOLS:-.cache/openwrt-tools}}")"
shared="${OPENWRT_SHARED:-../shared/openwrt}"
# a git worktree one level further down (wt/NAME) finds it one level further up
[ -n "${OPENWRT_SHARED:-}" ] || [ -d "$shared" ] || [ ! -d ../../shared/openwrt ] || shared=../../shared/openwrt

if [ -x "$dest/bin/uci" ] && [ -x "$dest/bin/opkg" ] && [ -x "$dest/bin/apk" ] && [ -d "$dest/openwrt-files" ]; then
	echo "openwrt-tools: already built in $dest"
	exit 0
fi
if [ ! -f "$shared/build-tools.sh" ] || [ ! -d "$shared/src" ]; then
	echo "openwrt-tools: $shared (build-tools.sh, src/) not found: not building; the opkg/apk/uci tests will skip"
	exit 0
fi

# what build-tools.sh needs (libjson-c-dev: jshn.sh, which procd.sh in the test roots sources)
need=(build-essential cmake pkg-config meson ninja-build libssl-dev zlib1g-dev libjson-c-dev)
missing=()
for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "openwrt-tools: installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
			{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
	else
		echo "openwrt-tools: missing ${missing[*]} (apt-get install them as root)" >&2
		exit 1
	fi
fi

t0=$(date +%s)
mkdir -p "$dest"
bash "$shared/build-tools.sh" "$dest" "$shared/src" >"$dest/build.log" 2>&1 || { tail -40 "$dest/build.log" >&2; exit 1; }
rm -rf "$dest/openwrt-files"
mkdir -p "$dest/openwrt-files"
tar -C "$dest/openwrt-files" -xzf "$(ls "$shared"/src/openwrt-files-*.tar.gz | head -1)"
echo "openwrt-tools: built opkg, apk, uci in $dest in $(( $(date +%s) - t0 )) s"
