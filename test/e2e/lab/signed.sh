#!/usr/bin/env bash
# The Secure Boot payload for the e2e lab, from Debian's own signed packages:
#   WORKDIR/www/sb/shimx64.efi          shim-signed: /usr/lib/shim/shimx64.efi.signed (Microsoft-signed)
#   WORKDIR/www/sb/grubnetx64.efi.signed grub-efi-amd64-signed: the network GRUB (Debian-signed)
#   WORKDIR/www/debian/initrd-sb.gz     the lab initrd (mkinitrd.sh) + efivarfs.ko, reporting
#                                       secureboot=<SecureBoot efivar> and its /proc/cmdline on /booted
# The kernel is mkinitrd.sh's (Debian's signed linux-image-*-amd64). Nothing is installed:
# `apt-get download` + `dpkg-deb -x` (shim-signed's and grub's maintainer scripts write /boot/efi).
# Usage: signed.sh WORKDIR   (after mkinitrd.sh WORKDIR; reuses what is already there)
set -euo pipefail
W=${1:?usage: signed.sh WORKDIR}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for c in apt-get dpkg-deb cpio gzip zcat; do command -v "$c" >/dev/null || die "missing command '$c'"; done
S=$W/signed
SHIM=$S/root/usr/lib/shim/shimx64.efi.signed
GRUB=$S/root/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
if [ ! -s "$SHIM" ] || [ ! -s "$GRUB" ]; then
  mkdir -p "$S/debs" "$S/root"
  log "apt-get download shim-signed grub-efi-amd64-signed"
  (cd "$S/debs" && apt-get download -q -o APT::Sandbox::User=root shim-signed grub-efi-amd64-signed >/dev/null)
  for p in shim-signed grub-efi-amd64-signed; do dpkg-deb -x "$(ls -1t "$S/debs/${p}"_*.deb | head -1)" "$S/root"; done
fi
[ -s "$SHIM" ] && [ -s "$GRUB" ] || die "signed binaries not found after unpack"
mkdir -p "$W/www/sb"
cp "$SHIM" "$W/www/sb/shimx64.efi"
cp "$GRUB" "$W/www/sb/grubnetx64.efi.signed"

IN=$W/www/debian/initrd.gz
OUT=$W/www/debian/initrd-sb.gz
[ -s "$IN" ] || die "no $IN (run mkinitrd.sh first)"
if [ ! -s "$OUT" ] || [ "$IN" -nt "$OUT" ] || [ "$0" -nt "$OUT" ]; then
  T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
  (cd "$T" && zcat "$IN" | cpio -i -d --quiet)
  KDEB=$(ls -1 "$W"/kernel/linux-image-*.deb 2>/dev/null | head -1)
  [ -n "$KDEB" ] || die "no kernel .deb in $W/kernel"
  dpkg-deb --fsys-tarfile "$KDEB" | tar -x -O --wildcards './lib/modules/*/kernel/fs/efivarfs/efivarfs.ko' >"$T/lib/modules/efivarfs.ko"
  cat >"$T/sbcheck.sh" <<'EOS'
# sourced by /init: Secure Boot as the booted kernel sees it (efivar: 4 attribute bytes + the value)
insmod /lib/modules/efivarfs.ko 2>/dev/null
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
SBV=$(od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | awk '{v=$NF} END{print v}')
CL=$(sed 's/%/%25/g; s/ /%20/g; s/"/%22/g; s/;/%3B/g; s/\$/%24/g; s/&/%26/g; s/#/%23/g; s/+/%2B/g; s/'"'"'/%27/g' /proc/cmdline)
echo "LAB: SecureBoot efivar=${SBV:-none}"
EOS
  python3 - "$T/init" <<'EOS'
import sys
p = sys.argv[1]; s = open(p).read()
a = 'mount -t devtmpfs devtmpfs /dev 2>/dev/null\n'
b = '&platform=$PLATFORM'
if a not in s or b not in s:
    sys.exit("unexpected /init (mkinitrd.sh changed?)")
s = s.replace(a, a + '. /sbcheck.sh\n', 1)
s = s.replace(b, b + '&secureboot=${SBV:-none}&cmdline=$CL', 1)
open(p, 'w').write(s)
EOS
  (cd "$T" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) >"$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
fi
log "shim $(stat -c %s "$W/www/sb/shimx64.efi") B, grub $(stat -c %s "$W/www/sb/grubnetx64.efi.signed") B, initrd-sb $(stat -c %s "$OUT") B"
