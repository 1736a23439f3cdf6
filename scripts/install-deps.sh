#!/usr/bin/env bash
# The Debian packages `make test`, `make demo` and CI need (Debian 12). Installs the
# missing ones with apt-get when run as root on Debian; otherwise prints one line
# naming them and exits 1. Quiet and quick when nothing is missing.
#   scripts/install-deps.sh           check, install what is missing
#   scripts/install-deps.sh --check   check only: name what is missing, exit 1 if anything is
#   scripts/install-deps.sh --list    print the package names
# SKIP_DEPS=1 skips it (`make test SKIP_DEPS=1` runs with what is there; suites that
# cannot run are then listed in the summary line).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

PKGS=(
  qemu-system-x86 ipxe-qemu ipxe ovmf   # real firmware: SeaBIOS + iPXE ROMs, OVMF, iPXE loaders
  dnsmasq-base                           # IPv6 RAs on the lab LAN; proxy-mode neighbour; bench baseline
  radvd                                  # RAs with the M/O flags (as odhcpd sends them) for the IPv6 e2e
  busybox-static cpio                    # the lab's initrd
  isc-dhcp-client udhcpc kea-admin       # DHCP clients: dhclient, udhcpc, perfdhcp
  isc-dhcp-relay                         # a real DHCP relay agent (giaddr, option 82) for the relay-subnet test
  tftp-hpa atftp curl tftpd-hpa          # TFTP clients; tftpd-hpa as the bench baseline
  mosquitto mosquitto-clients            # the MQTT broker the tests talk to
  tcpdump tshark                         # captures, `relayctl trace` checks
  shellcheck                             # the OpenWrt package's scripts
  nginx-light                            # bench baseline (proxy_cache)
  chromium                               # the dashboard in a headless browser
  pxelinux syslinux-common               # the e2e PXELINUX chain (pxelinux.0, ldlinux.c32)
  nftables                               # the e2e uplink check: the firewall rules OpenWrt would have
  iproute2 python3 tmux openssl          # openssl: the test CA for MQTT over TLS and the https upstream
  build-essential cmake pkg-config meson ninja-build libssl-dev zlib1g-dev libjson-c-dev
                                         # scripts/openwrt-tools.sh builds OpenWrt's opkg/apk/uci with these
)

# Where there is no dpkg: a command or file each package provides (packages not named here
# are not checked there).
declare -A PROBE=(
  [qemu-system-x86]=qemu-system-x86_64 [ipxe]=/usr/lib/ipxe/snponly.efi [ovmf]=/usr/share/ovmf/OVMF.fd
  [dnsmasq-base]=dnsmasq [radvd]=radvd [busybox-static]=busybox [cpio]=cpio [isc-dhcp-client]=dhclient [isc-dhcp-relay]=dhcrelay [udhcpc]=udhcpc
  [kea-admin]=perfdhcp [tftp-hpa]=tftp [atftp]=atftp [curl]=curl [mosquitto]=mosquitto
  [mosquitto-clients]=mosquitto_sub [tshark]=tshark [shellcheck]=shellcheck [chromium]=chromium
  [nftables]=nft [iproute2]=ip [python3]=python3 [tmux]=tmux [openssl]=openssl
  [build-essential]=gcc [cmake]=cmake [pkg-config]=pkg-config [meson]=meson [ninja-build]=ninja
)

case "${1:-}" in
  --list) printf '%s\n' "${PKGS[@]}"; exit 0 ;;
  --check | '') ;;
  *) echo "usage: $0 [--check|--list]" >&2; exit 2 ;;
esac
[ "${SKIP_DEPS:-}" = 1 ] && exit 0

have() { case "$1" in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac; }
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
else
  for p in "${PKGS[@]}"; do [ -z "${PROBE[$p]:-}" ] || have "${PROBE[$p]}" || missing+=("$p"); done
fi
# the e2e lab and the demo (root only) download Debian's kernel package (apt-get download): they need the package lists
lists_ok() { [ "$(id -u)" != 0 ] || ! command -v apt-cache >/dev/null 2>&1 || apt-cache depends linux-image-amd64 2>/dev/null | grep -q 'Depends: linux-image-[0-9]'; }

if [ ${#missing[@]} -eq 0 ] && lists_ok; then exit 0; fi
can_apt=0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -r /etc/debian_version ] && can_apt=1
if [ "${1:-}" = --check ] || [ $can_apt = 0 ]; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} — as root: apt-get install -y --no-install-recommends ${missing[*]} (or run scripts/install-deps.sh as root)" >&2
  else
    echo "install-deps: the apt package lists have no linux-image-amd64 (the e2e lab downloads it) — as root: apt-get update" >&2
  fi
  exit 1
fi
t0=$(date +%s)
echo "install-deps: apt-get update${missing[*]:+; installing ${missing[*]}}"
apt-get update -q >/dev/null
if [ ${#missing[@]} -gt 0 ]; then apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; fi
echo "install-deps: done in $(( $(date +%s) - t0 )) s"
