#!/usr/bin/env bash
# Builds kubelet, kube-apiserver, kubectl, and for the multi-node cluster
# kube-scheduler, kube-controller-manager and kube-proxy (k8s.io/kubernetes at
# $KUBERNETES_VERSION) and coredns ($COREDNS_VERSION), for the cluster's conformance
# specs e2e.test, ginkgo, agnhost and upstream busybox (KEELSON_BUILD_CONFORMANCE=0
# skips them), and etcd ($ETCD_VERSION) from the Go module proxy into
# $KEELSON_PREFIX/k8s/bin, for the end-to-end tests. `go install` refuses these
# modules (their go.mod has replace lines), so each is built from a small consumer module kept under the prefix; with
# the build cache warm a rerun takes seconds, and a binary already at the pinned
# version is not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
K8S=$KEELSON_PREFIX/k8s
BIN=$K8S/bin
mkdir -p "$BIN"
log() { printf 'build-k8s: %s\n' "$*" >&2; }

has_mod() {
  [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" \
    '($1=="mod"||$1=="dep") && $2==m && $3==v {found=1} END {exit !found}'
}

# --- kubernetes ---------------------------------------------------------------
need=()
for c in kubelet kube-apiserver kubectl kube-scheduler kube-controller-manager kube-proxy; do
  has_mod "$BIN/$c" k8s.io/kubernetes "$KUBERNETES_VERSION" || need+=("$c")
done
if [ ${#need[@]} -gt 0 ]; then
  mod=$K8S/src/kubernetes-$KUBERNETES_VERSION
  mkdir -p "$mod"
  if [ ! -f "$mod/go.sum" ]; then
    log "preparing consumer module for k8s.io/kubernetes $KUBERNETES_VERSION"
    gomod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
    {
      echo "module keelson.local/k8sbuild"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo
      # Each staging module the kubernetes module points at ./staging is published
      # on its own at the matching v0 version.
      grep -E '=> ./staging/src/' "$gomod" | awk -v v="$KUBERNETES_STAGING_VERSION" '{print "replace " $1 " => " $1 " " v}'
    } > "$mod/go.mod"
    # -mod=mod lets the builds below fill in go.sum.
    touch "$mod/go.sum"
  fi
  for c in "${need[@]}"; do
    log "building $c $KUBERNETES_VERSION (a cold build takes minutes)"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$BIN/$c" "k8s.io/kubernetes/cmd/$c")
  done
fi

# --- Kubernetes' own conformance specs (make test-conformance) --------------------
# e2e.test (test/e2e of the same release), the ginkgo CLI at the version e2e.test was
# built with (it runs the specs in parallel processes), and agnhost, the e2e specs'
# all-purpose test binary (test/images builds its image around it). A cold e2e.test
# build takes ~10 minutes on 2 cores.
if [ "${KEELSON_BUILD_CONFORMANCE:-1}" = 1 ]; then
  mod=$K8S/src/kubernetes-$KUBERNETES_VERSION
  build() { # output, package, go command and flags...
    local out=$1 pkg=$2; shift 2
    has_mod "$out" k8s.io/kubernetes "$KUBERNETES_VERSION" && return 0
    log "building $(basename "$out") $KUBERNETES_VERSION (a cold build takes minutes)"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go "$@" -trimpath -o "$out.tmp" "$pkg" && mv "$out.tmp" "$out")
  }
  build "$BIN/e2e.test" k8s.io/kubernetes/test/e2e test -c -vet=off
  build "$BIN/agnhost" k8s.io/kubernetes/test/images/agnhost build
  gv=$(cd "$mod" && GOFLAGS=-mod=mod go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
  if ! { [ -x "$BIN/ginkgo" ] && "$BIN/ginkgo" version 2>/dev/null | grep -q "${gv#v}"; }; then
    log "building ginkgo $gv"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$BIN/ginkgo" github.com/onsi/ginkgo/v2/ginkgo)
  fi
  # busybox as the e2e images have it: upstream's defaults (applets exec'd from the
  # file system; ash passes every environment variable on), less tc, which does
  # not build against current kernel headers. About a minute.
  bbv=$({ "$BIN/busybox" 2>&1 || true; } | head -1) # busybox with no applet exits 1
  if [[ "$bbv" != "BusyBox v$BUSYBOX_VERSION "* ]]; then
    log "building busybox $BUSYBOX_VERSION"
    bb_pkgs() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc make bzip2 libc6-dev >/dev/null; }
    bb_pkgs || { apt-get update -qq && bb_pkgs; }
    src=$(mktemp -d)
    trap 'rm -rf "$src"' EXIT
    curl -fsSL -o "$src/busybox.tar.bz2" "http://deb.debian.org/debian/pool/main/b/busybox/busybox_$BUSYBOX_VERSION.orig.tar.bz2"
    echo "$BUSYBOX_SHA256  $src/busybox.tar.bz2" | sha256sum -c --quiet
    tar -xjf "$src/busybox.tar.bz2" -C "$src"
    (cd "$src/busybox-$BUSYBOX_VERSION" && make defconfig >/dev/null &&
      sed -i 's/^CONFIG_TC=y/# CONFIG_TC is not set/' .config &&
      make -j"$(nproc)" busybox >"$src/build.log" 2>&1) || { tail -30 "$src/build.log"; exit 1; }
    install -m 0755 "$src/busybox-$BUSYBOX_VERSION/busybox" "$BIN/busybox"
    rm -rf "$src"
    trap - EXIT
  fi
fi

# --- coredns (the cluster DNS of make test-cluster) --------------------------------
# coredns' own main imports core/plugin, which links every plugin with its cloud SDKs;
# this consumer module's main links only the plugins a cluster's Corefile uses. A plugin
# package only registers itself: the order plugins run in is coredns' fixed directive
# list (core/dnsserver/zdirectives.go), whichever of them are linked.
if ! has_mod "$BIN/coredns" github.com/coredns/coredns "$COREDNS_VERSION"; then
  mod=$K8S/src/coredns-$COREDNS_VERSION
  mkdir -p "$mod"
  cat > "$mod/go.mod" <<EOM
module keelson.local/corednsbuild

go 1.26

require github.com/coredns/coredns $COREDNS_VERSION
EOM
  cat > "$mod/main.go" <<'EOM'
package main

import (
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func main() { coremain.Run() }
EOM
  log "building coredns $COREDNS_VERSION"
  touch "$mod/go.sum"
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags="-s -w" -o "$BIN/coredns.tmp" . && mv "$BIN/coredns.tmp" "$BIN/coredns")
fi

# --- etcd ---------------------------------------------------------------------------
if ! has_mod "$BIN/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; then
  mod=$K8S/src/etcd-$ETCD_VERSION
  mkdir -p "$mod"
  cat > "$mod/go.mod" <<EOM
module keelson.local/etcdbuild

go 1.26

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOM
  log "building etcd $ETCD_VERSION"
  touch "$mod/go.sum"
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
fi
log "ok: $(ls "$BIN" | tr '\n' ' ')"
