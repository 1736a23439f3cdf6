#!/usr/bin/env bash
# Builds the OpenWrt packages of one release, version <package.json version>-r<PKG_RELEASE of
# image/openwrt/Makefile> (e.g. 0.1.0-r1, the version the SDK feed Makefile gives too):
#   OUT_DIR/bootrelay_<v>-r<n>_all.ipk   OpenWrt 24.10 (opkg), laid out exactly as OpenWrt's
#     scripts/ipkg-build and include/package-pack.mk do it: a gzipped GNU tar (not an ar
#     archive) of ./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz; every tar is
#     --format=gnu --numeric-owner, owner 0, sorted by name, with ./ prefixes and a fixed mtime
#     (SOURCE_DATE_EPOCH, else the last commit), gzip -n: the same inputs give the same bytes.
#   OUT_DIR/bootrelay-<v>-r<n>.apk      OpenWrt 25.12 (apk-tools v3), built as package-pack.mk
#     does with CONFIG_USE_APK: `apk mkpkg`, arch noarch, depends "libc node", post-install /
#     post-upgrade / pre-deinstall wrapping default_postinst / default_prerm, and
#     lib/apk/packages/bootrelay.{list,conffiles,conffiles_static}; unsigned. Only where an
#     apk-tools v3 `apk` is on PATH or given as APK=/path/to/apk (APK=none: no .apk).
# Needs the bundles from `make build` (dist/bootrelay.js, dist/relayctl.js).
# Usage: bash image/build-ipk.sh [OUT_DIR]    (default OUT_DIR: dist; older builds there are removed)
# BUNDLE_DIR=DIR takes the two bundles from DIR instead of dist/; PKG_RELEASE=N overrides the
# release (an upgrade test builds -r2).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

name=bootrelay
upstream="$(node -p "require('./package.json').version")"
release="${PKG_RELEASE:-$(sed -n 's/^PKG_RELEASE:=[[:space:]]*//p' image/openwrt/Makefile)}"
case "$release" in
	''|*[!0-9]*) echo "build-ipk: PKG_RELEASE must be a number, got '$release'" >&2; exit 1 ;;
esac
version="$upstream-r$release"
license="$(node -p "require('./package.json').license || 'MIT'")"
out_dir="${1:-dist}"
files="image/files"
control_src="image/control"

bundles="${BUNDLE_DIR:-dist}"
for f in "$bundles/bootrelay.js" "$bundles/relayctl.js"; do
	if [ ! -s "$f" ]; then
		echo "build-ipk: $f is missing: run 'make build' (node scripts/build.mjs) first" >&2
		exit 1
	fi
done

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
	epoch="$SOURCE_DATE_EPOCH"
else
	epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/bootrelay-ipk.XXXXXX")"
trap 'rm -rf "$work"' EXIT
data="$work/data"
ctrl="$work/CONTROL"
mkdir -p "$data" "$ctrl" "$work/out"

# --- data: what lands on the router (modes as OpenWrt's INSTALL_BIN/DATA/CONF give them) ---
inst() { # inst MODE SRC DEST
	install -D -m "$1" "$2" "$data$3"
}
inst 0644 "$bundles/bootrelay.js" /usr/lib/bootrelay/bootrelay.js
inst 0644 "$bundles/relayctl.js" /usr/lib/bootrelay/relayctl.js
inst 0755 "$files/usr/bin/bootrelay" /usr/bin/bootrelay
inst 0755 "$files/usr/bin/relayctl" /usr/bin/relayctl
inst 0755 "$files/usr/libexec/bootrelay-router" /usr/libexec/bootrelay-router
inst 0755 "$files/etc/init.d/bootrelay" /etc/init.d/bootrelay
inst 0600 "$files/etc/config/bootrelay" /etc/config/bootrelay
inst 0755 "$files/etc/uci-defaults/90-bootrelay" /etc/uci-defaults/90-bootrelay
# sysupgrade keeps /etc/bootrelay/ (what dnsmasq's options were before bootrelay changed them)
inst 0644 "$files/lib/upgrade/keep.d/bootrelay" /lib/upgrade/keep.d/bootrelay
# the documented config (uci commit rewrites /etc/config/bootrelay without comments)
inst 0644 "$files/usr/share/bootrelay/config.txt" /usr/share/bootrelay/config.txt
find "$data" -type d -exec chmod 0755 {} +

tarc() { # tarc DIR MEMBERS... > out.tar.gz
	local dir="$1"
	shift
	tar -C "$dir" --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$epoch" -cf - "$@" | gzip -9n
}

tarc "$data" . > "$work/out/data.tar.gz"
installed_size="$(zcat < "$work/out/data.tar.gz" | wc -c)"

# --- control: the fields of package-pack.mk's Package/<name>/CONTROL, then Description ---
{
	echo "Package: $name"
	echo "Version: $version"
	echo "Depends: libc, node"
	echo "Source: feeds/bootrelay/bootrelay"
	echo "SourceName: $name"
	echo "License: $license"
	echo "Section: net"
	echo "SourceDateEpoch: $epoch"
	echo "Maintainer: bootrelay developers"
	echo "Architecture: all"
	echo "Installed-Size: $installed_size"
	printf 'Description: '
	sed -e 's,^[[:space:]]*, ,g' <<'DESC'
Network-boot relay for a travel router: DHCP server or proxyDHCP, TFTP and HTTP
on the LAN, boot files read through a cache from an upstream HTTP boot server,
live boot progress over MQTT; relayctl drives it. Runs on Node.js.
DESC
} > "$ctrl/control"
install -m 0644 "$control_src/conffiles" "$ctrl/conffiles"
for s in postinst prerm postinst-pkg prerm-pkg; do
	install -m 0755 "$control_src/$s" "$ctrl/$s"
done
chmod 0644 "$ctrl/control"
tarc "$ctrl" . > "$work/out/control.tar.gz"

echo "2.0" > "$work/out/debian-binary"
chmod 0644 "$work/out/"*

mkdir -p "$out_dir"
rm -f "$out_dir/${name}"_*_all.ipk "$out_dir/${name}"-*.apk
pkg_file="$out_dir/${name}_${version}_all.ipk"
tarc "$work/out" ./debian-binary ./data.tar.gz ./control.tar.gz > "$pkg_file"
echo "Packaged $name $version into $pkg_file ($(wc -c < "$pkg_file") bytes, installed size $installed_size)"

# --- the .apk for OpenWrt 25.12 ---
apk="${APK:-$(command -v apk || true)}"
if [ "$apk" = none ] || [ -z "$apk" ]; then
	echo "build-ipk: no apk-tools v3 'apk' on PATH (APK=/path/to/apk): no .apk for OpenWrt 25.12"
	exit 0
fi
if ! "$apk" --version 2>/dev/null | grep -q '^apk-tools 3\.'; then
	if [ -n "${APK:-}" ]; then
		echo "build-ipk: APK=$apk is not apk-tools v3 ($("$apk" --version 2>&1 | head -1))" >&2
		exit 1
	fi
	echo "build-ipk: $apk is not apk-tools v3: no .apk for OpenWrt 25.12"
	exit 0
fi
idir="$work/apk-data" adir="$work/apk-scripts"
cp -a "$data" "$idir"
mkdir -p "$adir" "$idir/lib/apk/packages"
chmod 0755 "$idir/lib/apk" "$idir/lib/apk/packages"
# the script headers package-pack.mk writes, with the package's own part appended
# shellcheck disable=SC2016  # the ${...} are for the scripts, not for here
hdr='[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. ${IPKG_INSTROOT}/lib/functions.sh
export root="${IPKG_INSTROOT}"
export pkgname="'"$name"'"'
{
	echo '#!/bin/sh'
	# shellcheck disable=SC2016
	echo '[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
	echo "$hdr"
	echo add_group_and_user
	echo default_postinst
	sed -z 's/^\s*#!/#!/' "$control_src/postinst-pkg"
} > "$adir/post-install"
{
	echo '#!/bin/sh'
	echo 'export PKG_UPGRADE=1'
	sed -z 's/^\s*#!/#!/' "$adir/post-install"
} > "$adir/post-upgrade"
{
	echo '#!/bin/sh'
	echo "$hdr"
	echo default_prerm
	sed -z 's/^\s*#!/#!/' "$control_src/prerm-pkg"
} > "$adir/pre-deinstall"
meta="$idir/lib/apk/packages/$name"
# as package-pack.mk's `find > list`, the list names itself (created first: the same every run)
: > "$meta.list"
list="$(cd "$idir" && find . -type f,l -printf "/%P\n" | LC_ALL=C sort)"
printf '%s\n' "$list" > "$meta.list"
cp "$control_src/conffiles" "$meta.conffiles"
: > "$meta.conffiles_static"
while read -r f; do
	[ -f "$idir/$f" ] && echo "$f $(sha256sum < "$idir/$f" | cut -d' ' -f1)" >> "$meta.conffiles_static"
done < "$meta.conffiles"
chmod 0644 "$meta".*
find "$idir" -exec touch -h -d "@$epoch" {} +
apk_file="$out_dir/${name}-${version}.apk"
desc="$(sed -n '/^Description:/,$p' "$ctrl/control" | sed '1s/^Description: *//; s/^ *//' | tr '\n' ' ' | sed 's/ *$//')"
SOURCE_DATE_EPOCH="$epoch" "$apk" mkpkg \
	--info "name:$name" \
	--info "version:$version" \
	--info "description:$desc" \
	--info "arch:noarch" \
	--info "license:$license" \
	--info "origin:feeds/bootrelay/bootrelay" \
	--info "url:" \
	--info "maintainer:bootrelay developers" \
	--info "provides:" \
	--script "post-install:$adir/post-install" \
	--script "post-upgrade:$adir/post-upgrade" \
	--script "pre-deinstall:$adir/pre-deinstall" \
	--info "depends:libc node" \
	--files "$idir" \
	--output "$apk_file"
echo "Packaged $name $version into $apk_file ($(wc -c < "$apk_file") bytes)"
