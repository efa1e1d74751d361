#!/usr/bin/env bash
# Builds bin/keelson_<version>_amd64.deb with dpkg-deb: keelson and keelson-logger in
# /usr/bin, the systemd units in /lib/systemd/system, the default config and CNI
# config as conffiles under /etc/keelson, and the pinned containerd, shim, runc,
# crictl and CNI plugins under /opt/keelson (hack/install-deps.sh puts them there).
# The package enables keelson.service on install; a purge removes /etc/keelson,
# /var/lib/keelson and /run/keelson. Usage: hack/deb.sh VERSION
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/versions.env
version=$1
# A Debian version: v1.2.3 → 1.2.3, v1.2.3-4-gabc → 1.2.3+4.gabc, an untagged
# build (git describe gives a hash) → 0~git<hash>.
case "$version" in
  v[0-9]*.*|[0-9]*.*) version=${version#v}; rest=${version#*-}
    [ "$rest" = "$version" ] || version="${version%%-*}+${rest//-/.}" ;;
  *) version="0~git${version//-/.}" ;;
esac
root=bin/deb
rm -f bin/keelson_*.deb # one package in bin/: the node test installs it
rm -rf "$root"
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/keelson/cni/net.d" \
  "$root$KEELSON_PREFIX/bin" "$root$KEELSON_PREFIX/cni/bin"
install -m 0755 bin/keelson bin/keelson-logger "$root/usr/bin/"
sed 's|/usr/local/bin/keelson|/usr/bin/keelson|' deploy/systemd/keelson.service > "$root/lib/systemd/system/keelson.service"
install -m 0644 deploy/systemd/keelson.socket "$root/lib/systemd/system/"
install -m 0644 deploy/config.toml "$root/etc/keelson/config.toml"
install -m 0644 deploy/cni/10-keelson.conflist "$root/etc/keelson/cni/net.d/"
for b in containerd containerd-shim-runc-v2 runc crictl; do
  install -m 0755 "$KEELSON_PREFIX/bin/$b" "$root$KEELSON_PREFIX/bin/"
done
install -m 0755 "$KEELSON_PREFIX"/cni/bin/* "$root$KEELSON_PREFIX/cni/bin/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: keelson
Version: $version
Architecture: amd64
Maintainer: keelson developers <keelson@example.invalid>
Installed-Size: $size
Depends: iptables, iproute2, ca-certificates
Section: admin
Priority: optional
Homepage: https://github.com/keelson/keelson
Description: CRI runtime for Kubernetes nodes
 keelson serves kubelet's Container Runtime Interface on /run/keelson/keelson.sock,
 driving a containerd it supervises (containerd $CONTAINERD_VERSION, runc $RUNC_VERSION
 and CNI plugins $CNI_PLUGINS_VERSION are included under $KEELSON_PREFIX).
CONTROL
printf '/etc/keelson/config.toml\n/etc/keelson/cni/net.d/10-keelson.conflist\n' > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable keelson.service >/dev/null
  echo "keelson: enabled; start it with: systemctl start keelson"
fi
SCRIPT
cat > "$root/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
# Containers keep running in their shims when keelson stops; remove pods first
# (kubelet drain) to take them down too.
if [ -d /run/systemd/system ]; then
  systemctl stop keelson.socket keelson.service || true
  if [ "$1" = remove ]; then systemctl disable keelson.service keelson.socket >/dev/null 2>&1 || true; fi
fi
SCRIPT
cat > "$root/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -rf /var/lib/keelson /run/keelson /etc/keelson
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
SCRIPT
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
out="bin/keelson_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
rm -rf "$root"
echo "$out"
