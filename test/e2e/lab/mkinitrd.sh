#!/usr/bin/env bash
# Build the boot payload served by the upstream:  $LAB_STATE/www/{vmlinuz,initrd.gz}
#
# Kernel: Debian's linux-image-<abi>-amd64 .deb, fetched with `apt-get download`
# and unpacked with dpkg-deb (not installed). Override with KERNEL_DEB=path.deb.
# Initrd: busybox-static + the NIC modules (virtio-net, e1000, USB CDC/RNDIS
# behind xHCI/EHCI/UHCI) + an /init that:
#   loads the modules, waits for a NIC, runs `udhcpc`, then
#   GET  <lab.report>?mac=..&ip=..&if=..&platform=..&uptime=..   (the "booted" report)
#   and `poweroff -f` (QEMU exits).
# Kernel command line parameters it reads (set by the iPXE script):
#   lab.report=http://RELAY:PORT/booted   lab.platform=pcbios|efi   lab.hold=1 (do not power off)
set -euo pipefail
# Usage: mkinitrd.sh WORKDIR   -> WORKDIR/www/debian/{vmlinuz,initrd.gz}
# (adapted from the project's lab recipes, shared/lab/mkinitrd.sh)
LAB_STATE=${1:?usage: mkinitrd.sh WORKDIR}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_cmd() { for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "missing command '$c'"; done; }
need_cmd dpkg-deb cpio gzip apt-get
[ -x /bin/busybox ] || die "busybox-static not installed"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is not static (install busybox-static)"

KDIR=$LAB_STATE/kernel
OUT=$LAB_STATE/www/debian
mkdir -p "$KDIR" "$OUT"

# 1. Kernel .deb -> $KDIR/root/{boot/vmlinuz-*,lib/modules/*}
if [ ! -f "$KDIR/root/.done" ]; then
  deb=${KERNEL_DEB:-}
  if [ -z "$deb" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update)"
    log "downloading $pkg"
    (cd "$KDIR" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
    deb=$(ls -1 "$KDIR"/"$pkg"_*.deb | head -1)
  fi
  log "unpacking $(basename "$deb")"
  rm -rf "$KDIR/root"; mkdir -p "$KDIR/root"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$KDIR/root" --wildcards \
    './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/net/*' './lib/modules/*/kernel/drivers/usb/*' \
    './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/net/core/*'
  touch "$KDIR/root/.done"
fi
VMLINUZ=$(ls -1 "$KDIR"/root/boot/vmlinuz-* | head -1)
KVER=${VMLINUZ##*/vmlinuz-}
MODROOT=$KDIR/root/lib/modules/$KVER/kernel

# 2. Resolve module dependencies from each .ko's .modinfo "depends=" and emit
#    a load order (dependencies first).
SEEDS="virtio_pci virtio_net e1000 xhci_pci ehci_pci uhci_hcd usbnet cdc_ether rndis_host cdc_ncm"
declare -A KO=() SEEN=()
while IFS= read -r f; do b=${f##*/}; b=${b%.ko}; KO[${b//-/_}]=$f; done < <(find "$MODROOT" -name '*.ko')
ORDER=()
visit() {
  local m=${1//-/_} d
  [ -n "${SEEN[$m]:-}" ] && return 0
  SEEN[$m]=1
  [ -n "${KO[$m]:-}" ] || { log "module $m not found (built in?)"; return 0; }
  for d in $(tr '\0' '\n' <"${KO[$m]}" | sed -n 's/^depends=//p' | tr ',' ' '); do visit "$d"; done
  ORDER+=("$m")
}
for s in $SEEDS; do visit "$s"; done

# 3. Assemble the initrd tree.
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
mkdir -p "$T"/{bin,sbin,proc,sys,dev,tmp,etc/udhcpc,lib/modules}
cp /bin/busybox "$T/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$T/bin/$a"; done
: >"$T/modules.order"
for m in "${ORDER[@]}"; do cp "${KO[$m]}" "$T/lib/modules/$m.ko"; echo "$m" >>"$T/modules.order"; done

cat >"$T/etc/udhcpc/default.script" <<'EOF'
#!/bin/sh
# minimal udhcpc hook: configure the address and default route, remember the lease
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    { echo "ip=$ip"; echo "mask=$mask"; echo "router=$router"; echo "serverid=$serverid"; echo "siaddr=$siaddr"; echo "boot_file=$boot_file"; } >/tmp/lease
    ;;
esac
exit 0
EOF
chmod +x "$T/etc/udhcpc/default.script"

cat >"$T/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "LAB: initrd /init up at $(cut -d' ' -f1 /proc/uptime)s"
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | head -1; }
REPORT=$(arg lab.report); PLATFORM=$(arg lab.platform); HOLD=$(arg lab.hold)
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
IF=
i=0; while [ $i -lt 150 ]; do
  IF=$(ls /sys/class/net | grep -v '^lo$' | head -1); [ -n "$IF" ] && break
  i=$((i+1)); usleep 100000
done
ip link set lo up
if [ -z "$IF" ]; then echo "LAB: FAILED no network interface"; ls /sys/class/net; [ "$HOLD" = 1 ] && exec sh; poweroff -f; fi
DRV=$(basename "$(readlink /sys/class/net/$IF/device/driver)" 2>/dev/null)
MAC=$(cat /sys/class/net/$IF/address)
echo "LAB: nic $IF mac $MAC driver $DRV"
ip link set "$IF" up
if udhcpc -i "$IF" -f -q -n -t 8 -T 2 -x hostname:labclient -V labinitrd -s /etc/udhcpc/default.script && [ -f /tmp/lease ]; then
  . /tmp/lease
  echo "LAB: dhcp ok ip=$ip router=$router server=$serverid"
  U=$(cut -d' ' -f1 /proc/uptime)
  if wget -q -O /tmp/reply "$REPORT?mac=$MAC&ip=$ip&if=$IF&driver=$DRV&platform=$PLATFORM&uptime=$U"; then
    echo "LAB: BOOTED mac=$MAC ip=$ip uptime=${U}s reported to $REPORT"
  else
    echo "LAB: FAILED report to $REPORT"
  fi
else
  echo "LAB: FAILED dhcp on $IF"
fi
[ "$HOLD" = 1 ] && exec sh
sync; poweroff -f
EOF
chmod +x "$T/init"

(cd "$T" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) >"$OUT/initrd.gz.tmp"
mv "$OUT/initrd.gz.tmp" "$OUT/initrd.gz"
cp "$VMLINUZ" "$OUT/vmlinuz"
log "kernel $KVER: $(stat -c %s "$OUT/vmlinuz") bytes; initrd: $(stat -c %s "$OUT/initrd.gz") bytes, modules: ${ORDER[*]}"
