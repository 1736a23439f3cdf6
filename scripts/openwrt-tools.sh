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

if [ -x "$dest/bin/uci" ] && [ -x "$dest/bin/opkg" ] && [ -x "$dest/bin/apk" ] && [ -d "$dest/openwrt-files" ] &&
	[ -x "$dest/sbin/procd" ]; then
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
for f in "$shared"/src/openwrt-files-*.tar.gz; do tar -C "$dest/openwrt-files" -xzf "$f"; break; done

# procd (25.12's pin) with ubusd/ubus and udebug's library, for running the init script under the
# real service manager (test/integration/image-procd.test.ts). procd is written for musl: on
# glibc it needs a strlcpy (a static inline one, included first) and -Wformat-overflow not fatal.
# Not built by build-tools.sh; a failure here only makes that test skip.
build_procd() {
	local w="$dest/.build" s
	unpack() { local t; for t in "$shared"/src/"$1"-*.tar.gz; do break; done
		rm -rf "${w:?}/$1"-*; tar -C "$w" -xzf "$t"; for t in "$w/$1"-*; do echo "$t"; break; done; }
	cm() { local src="$1" b="$2"; shift 2
		nice -n 10 cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
			-DCMAKE_INSTALL_PREFIX="$dest" -DCMAKE_PREFIX_PATH="$dest" -DCMAKE_INSTALL_RPATH="$dest/lib" "$@" >"$b.log" 2>&1 &&
		nice -n 10 cmake --build "$b" -j "$(nproc)" ${target:+--target $target} >>"$b.log" 2>&1; }
	s="$(unpack ubus)" && target='' cm "$s" "$w/b-ubus" -DBUILD_LUA=OFF -DBUILD_EXAMPLES=OFF &&
		cmake --install "$w/b-ubus" >>"$w/b-ubus.log" 2>&1 || return 1
	mkdir -p "$w/no-ucode"
	s="$(unpack udebug)" && target=udebug cm "$s" "$w/b-udebug" -Ducode_include_dir="$w/no-ucode" || return 1
	install -m 0755 "$w/b-udebug/libudebug.so" "$dest/lib/" && install -m 0644 "$s"/udebug.h "$s"/udebug-pcap.h "$dest/include/"
	printf '%s\n' '#ifndef _GNU_SOURCE' '#define _GNU_SOURCE' '#endif' '#include <string.h>' \
		'static inline size_t procd_strlcpy(char *d, const char *s, size_t n)' \
		'{ size_t l = strlen(s); if (n) { size_t c = l >= n ? n - 1 : l; memcpy(d, s, c); d[c] = 0; } return l; }' \
		'#define strlcpy procd_strlcpy' > "$w/strlcpy.h"
	s="$(unpack procd)" && target='procd setlbf' cm "$s" "$w/b-procd" -DCMAKE_C_FLAGS="-include $w/strlcpy.h -Wno-error=format-overflow" \
		-DJAIL_SUPPORT=OFF -DSECCOMP_SUPPORT=OFF -DUTRACE_SUPPORT=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON || return 1
	mkdir -p "$dest/sbin" && install -m 0755 "$w/b-procd/procd" "$dest/sbin/" && install -m 0755 "$w/b-procd/libsetlbf.so" "$dest/lib/"
}
if [ ! -x "$dest/sbin/procd" ]; then
	build_procd || echo "openwrt-tools: procd/ubus did not build (see $dest/.build/b-*.log): the procd test will skip" >&2
fi
echo "openwrt-tools: built opkg, apk, uci, procd, ubusd in $dest in $(( $(date +%s) - t0 )) s"
