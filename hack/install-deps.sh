#!/usr/bin/env bash
# Installs everything keelson needs to run and to be tested, idempotently:
# Debian packages, then containerd + shim, runc and the CNI plugins at the pinned
# versions (hack/versions.env) built from the Go module proxy into $KEELSON_PREFIX.
# A component already present at its pinned version is skipped, so reruns take seconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
PREFIX=${KEELSON_PREFIX}
BIN=$PREFIX/bin
CNI_BIN=$PREFIX/cni/bin
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export PATH=/usr/local/go/bin:$PATH

log() { printf 'install-deps: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "must run as root (installs packages and binaries under $PREFIX)"; exit 1
fi

# --- Debian packages -------------------------------------------------------
# iptables/iproute2: CNI bridge+portmap; libseccomp-dev+pkg-config: runc with seccomp;
# busybox-static: the test busybox image; containerd (pulls runc 1.1.5): Debian's
# containerd 1.6 that keelson must keep working against.
APT_PKGS=(iptables iproute2 libseccomp-dev pkg-config busybox-static containerd ca-certificates)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No init system here: keep package scripts from trying to start containerd.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e $policy ] && had_policy=1
  [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; }
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ $had_policy = 1 ] || rm -f $policy
fi

mkdir -p "$BIN" "$CNI_BIN"

# has_mod BINARY MODULE VERSION: is BINARY built from MODULE at VERSION?
has_mod() {
  [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" \
    '($1=="mod"||$1=="dep") && $2==m && $3==v {found=1} END {exit !found}'
}

# --- containerd + shim (CGO on) -------------------------------------------
for cmd in containerd containerd-shim-runc-v2; do
  if has_mod "$BIN/$cmd" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"; then
    continue
  fi
  log "building $cmd $CONTAINERD_VERSION"
  GOBIN=$BIN CGO_ENABLED=1 go install "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION"
done

# --- runc (seccomp on; libpathrs tag off) ---------------------------------
if ! has_mod "$BIN/runc" github.com/opencontainers/runc "$RUNC_VERSION"; then
  log "building runc $RUNC_VERSION"
  GOBIN=$BIN CGO_ENABLED=1 go install -tags "seccomp urfave_cli_no_docs" \
    "github.com/opencontainers/runc@$RUNC_VERSION"
fi

# --- CRIU (checkpoint/restore), from Debian's source of $CRIU_VERSION ------------
# runc runs `criu` from the shim's PATH, which starts with $BIN for the supervised
# containerd. Debian 12's own criu (3.17) fails `criu check` on kernels >= 6.13.
if ! "$BIN/criu" --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION"; then
  log "building criu $CRIU_VERSION"
  CRIU_BUILD_PKGS=(gcc make libbsd-dev libcap-dev libgnutls28-dev libnet1-dev libnl-3-dev
    libprotobuf-c-dev libprotobuf-dev protobuf-c-compiler protobuf-compiler uuid-dev pkgconf python3-protobuf curl xz-utils)
  apt_criu() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${CRIU_BUILD_PKGS[@]}" >/dev/null; }
  apt_criu || { apt-get update -qq && apt_criu; }
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  curl -fsSL -o "$src/criu.tar.xz" "http://deb.debian.org/debian/pool/main/c/criu/criu_$CRIU_VERSION.orig.tar.xz"
  echo "$CRIU_SHA256  $src/criu.tar.xz" | sha256sum -c --quiet
  tar -xJf "$src/criu.tar.xz" -C "$src"
  make -C "$src/criu-$CRIU_VERSION" -j"$(nproc)" criu >"$src/build.log" 2>&1 || { tail -30 "$src/build.log"; exit 1; }
  install -m 0755 "$src/criu-$CRIU_VERSION/criu/criu" "$BIN/criu"
  rm -rf "$src"; trap - EXIT
fi

# --- CNI plugins (static) ---------------------------------------------------
for p in main/bridge main/loopback main/host-local ipam/host-local meta/portmap meta/firewall meta/tuning; do
  name=${p##*/}
  [ "$p" = main/host-local ] && continue
  if has_mod "$CNI_BIN/$name" github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"; then
    continue
  fi
  log "building CNI plugin $name $CNI_PLUGINS_VERSION"
  GOBIN=$CNI_BIN CGO_ENABLED=0 go install \
    "github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION"
done

# --- default CNI config -------------------------------------------------------
# Only when no config exists at all: never overwrite an operator's network.
CNI_CONF_DIR=${KEELSON_CNI_CONF_DIR:-/etc/keelson/cni/net.d}
mkdir -p "$CNI_CONF_DIR"
if [ -z "$(find "$CNI_CONF_DIR" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) -print -quit)" ]; then
  log "writing default CNI config to $CNI_CONF_DIR/10-keelson.conflist"
  install -m 0644 "$here/../deploy/cni/10-keelson.conflist" "$CNI_CONF_DIR/10-keelson.conflist"
fi

log "ok: $BIN ($(ls "$BIN" | tr '\n' ' ')), $CNI_BIN"
