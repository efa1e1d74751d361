#!/usr/bin/env bash
# Builds the guest image the node tests boot: Debian 12 with systemd as PID 1,
# cgroup v2 only, AppArmor, and a unit that runs /mnt/run/run.sh from a 9p share
# and powers off. Cached as DIR/<hash>/ where the hash covers this file (package
# list included): a changed script builds a new image; older ones are removed.
#   image.sh DIR     prints the image directory on its last line
set -euo pipefail
dir=${1:?usage: image.sh DIR}
log() { printf 'vm-image: %s\n' "$*" >&2; }

# libprotobuf-c1 libnl-3-200 libnet1 libgnutls30 libbsd0: what the prefix's criu (hack/install-deps.sh)
# links; crun: the second runtime handler (this CI host's hybrid cgroups rule crun out).
PKGS=systemd,systemd-sysv,udev,dbus,linux-image-amd64,iproute2,iptables,kmod,procps,ca-certificates,apparmor,make,util-linux,mount,libprotobuf-c1,libnl-3-200,libnet1,libgnutls30,libbsd0,crun

hash=$(sha256sum "$0" | cut -c1-12)
img=$dir/img-$hash
if [ -f "$img/rootfs.img" ]; then echo "$img"; exit 0; fi

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v xz >/dev/null || missing+=(xz-utils)
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The guest pulls from the host's Debian archive.
src=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
[ -n "$src" ] || src=/etc/apt/sources.list
tmp=$dir/.build-$hash
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
log "mmdebstrap bookworm into $tmp (a few minutes)"

# Files the image carries, written by customize hooks.
runner='#!/bin/sh
# Runs /mnt/run/run.sh from the host share; its output and exit status go back there.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /mnt/run
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 run /mnt/run; then
  echo "node-vm: no 9p share" >/dev/console; systemctl poweroff -ff
fi
cd /mnt/run && bash ./run.sh > out.log 2>&1 < /dev/null
echo $? > rc.tmp && mv rc.tmp rc
sync
systemctl poweroff -ff'
runner_unit='[Unit]
Description=keelson node tests from the host share
After=multi-user.target
[Service]
Type=simple
ExecStart=/usr/local/sbin/node-vm-run
StandardOutput=journal+console
[Install]
WantedBy=multi-user.target'
net_unit='[Unit]
Description=static user-mode network on eth0
BindsTo=sys-subsystem-net-devices-eth0.device
After=sys-subsystem-net-devices-eth0.device
Before=network.target network-online.target
Wants=network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/sbin/ip link set lo up
ExecStart=/sbin/ip link set eth0 up
ExecStart=/sbin/ip addr add 10.0.2.15/24 dev eth0
ExecStart=/sbin/ip route add default via 10.0.2.2
[Install]
WantedBy=multi-user.target network-online.target'

export runner runner_unit net_unit
mmdebstrap --variant=minbase --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='echo node > "$1/etc/hostname"; printf "127.0.0.1 localhost\n127.0.1.1 node\n" > "$1/etc/hosts"' \
  --customize-hook='echo "/dev/vda / ext4 rw,noatime 0 0" > "$1/etc/fstab"' \
  --customize-hook='rm -f "$1/etc/resolv.conf"; echo "nameserver 10.0.2.3" > "$1/etc/resolv.conf"' \
  --customize-hook='printf "9p\n9pnet_virtio\n" > "$1/etc/modules-load.d/9p.conf"' \
  --customize-hook='tr -d - < /proc/sys/kernel/random/uuid > "$1/etc/machine-id"' \
  --customize-hook='printf "%s\n" "$runner" > "$1/usr/local/sbin/node-vm-run"; chmod 755 "$1/usr/local/sbin/node-vm-run"' \
  --customize-hook='printf "%s\n" "$runner_unit" > "$1/etc/systemd/system/node-vm-run.service"' \
  --customize-hook='printf "%s\n" "$net_unit" > "$1/etc/systemd/system/node-vm-net.service"' \
  --customize-hook='chroot "$1" systemctl enable node-vm-net.service node-vm-run.service' \
  --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer e2scrub_reap.service >/dev/null 2>&1' \
  --customize-hook='chroot "$1" passwd -d root >/dev/null' \
  --customize-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/node-vm"; printf "virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n" >> "$1/etc/initramfs-tools/modules"; chroot "$1" update-initramfs -u -k all >/dev/null' \
  --customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*_Packages' \
  bookworm "$tmp/rootfs" "$src" >&2

cp -L "$tmp/rootfs/vmlinuz" "$tmp/vmlinuz"
cp -L "$tmp/rootfs/initrd.img" "$tmp/initrd.img"
# The uncompressed kernel boots through its PVH entry: no in-guest decompression,
# a few seconds faster under TCG.
pos=$(tr '\375\067\172\130\132\000' '\n12345' < "$tmp/vmlinuz" | grep -abo '^12345' | head -1 | cut -d: -f1 || true)
if [ -n "$pos" ]; then
  tail -c +"$pos" "$tmp/vmlinuz" | xz -dc > "$tmp/vmlinux" 2>/dev/null || true
  head -c 4 "$tmp/vmlinux" | grep -q ELF || rm -f "$tmp/vmlinux"
fi
truncate -s 8G "$tmp/rootfs.img"
mkfs.ext4 -q -F -L node -E lazy_itable_init=1 -d "$tmp/rootfs" "$tmp/rootfs.img"
rm -rf "$tmp/rootfs"
# Replace older images (other hashes) with this one.
find "$dir" -maxdepth 1 -name 'img-*' ! -name "img-$hash" -exec rm -rf {} +
mv "$tmp" "$img"
trap - EXIT
log "image built in $((SECONDS - t0)) s: $(du -sh "$img/rootfs.img" | cut -f1) on disk"
echo "$img"
