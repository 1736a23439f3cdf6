#!/usr/bin/env bash
# Builds dist/bootrelay_<version>_all.ipk for OpenWrt 24.10 (opkg), laid out exactly as
# OpenWrt's scripts/ipkg-build and include/package-pack.mk do it:
#   the .ipk is a gzipped GNU tar (not an ar archive) of ./debian-binary ("2.0"),
#   ./data.tar.gz and ./control.tar.gz; every tar is --format=gnu --numeric-owner, owner 0,
#   sorted by name, with ./ prefixes and a fixed mtime (SOURCE_DATE_EPOCH, else the last
#   commit), gzip -n: the same inputs give the same bytes.
# Needs the bundles from `make build` (dist/bootrelay.js, dist/relayctl.js).
# Usage: bash image/build-ipk.sh [OUT_DIR]    (default OUT_DIR: dist)
# BUNDLE_DIR=DIR takes the two bundles from DIR instead of dist/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

name=bootrelay
version="$(node -p "require('./package.json').version")"
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
pkg_file="$out_dir/${name}_${version}_all.ipk"
rm -f "$pkg_file"
tarc "$work/out" ./debian-binary ./data.tar.gz ./control.tar.gz > "$pkg_file"
echo "Packaged $name $version into $pkg_file ($(wc -c < "$pkg_file") bytes, installed size $installed_size)"
