#!/usr/bin/env bash
# Builds crictl and critest (sigs.k8s.io/cri-tools at $CRI_TOOLS_VERSION) from the Go
# module proxy into $KEELSON_PREFIX/bin, for test/critest (`make critest`). critest is
# a Go test binary (`go test -c`), built from a small consumer module kept under
# $KEELSON_PREFIX/cri-tools/src. A binary already at the pinned version is not rebuilt;
# a cold build takes about a minute.
#
# It also extracts Debian's dynamically linked busybox (package busybox, downloaded
# with apt-get, never installed: it conflicts with busybox-static) to
# $KEELSON_PREFIX/cri-tools/busybox; test/images builds critest's busybox image from it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export PATH=/usr/local/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}
BIN=$KEELSON_PREFIX/bin
CT=$KEELSON_PREFIX/cri-tools
mkdir -p "$BIN" "$CT"
log() { printf 'build-cri-tools: %s\n' "$*" >&2; }

has_mod() {
  [ -x "$1" ] && go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" \
    '($1=="mod"||$1=="dep") && $2==m && $3==v {found=1} END {exit !found}'
}

# --- crictl -------------------------------------------------------------------------
if ! has_mod "$BIN/crictl" sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION"; then
  log "building crictl $CRI_TOOLS_VERSION"
  GOBIN=$BIN CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
fi

# --- critest (a test binary: go install cannot build it) -----------------------------
if ! has_mod "$BIN/critest" sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION"; then
  mod=$CT/src/critest-$CRI_TOOLS_VERSION
  mkdir -p "$mod"
  if [ ! -f "$mod/go.mod" ]; then
    log "preparing consumer module for sigs.k8s.io/cri-tools $CRI_TOOLS_VERSION"
    cat > "$mod/go.mod" <<EOM
module keelson.local/critest

go 1.26

require sigs.k8s.io/cri-tools $CRI_TOOLS_VERSION
EOM
    touch "$mod/go.sum"
  fi
  log "building critest $CRI_TOOLS_VERSION"
  (cd "$mod" && CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go test -c -trimpath -o "$BIN/critest" sigs.k8s.io/cri-tools/cmd/critest)
fi

# --- Debian's dynamic busybox, for critest's busybox image ------------------------------
if [ ! -x "$CT/busybox" ]; then
  log "fetching Debian's busybox package (dynamically linked; not installed)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 0755 "$tmp"
  # apt's sandbox user must be able to write the download directory.
  chown _apt "$tmp" 2>/dev/null || true
  if ! (cd "$tmp" && apt-get download busybox >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download busybox >/dev/null)
  fi
  dpkg-deb -x "$tmp"/busybox_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/bin/busybox" "$CT/busybox.new"
  mv "$CT/busybox.new" "$CT/busybox"
fi
log "ok: $BIN/crictl, $BIN/critest ($CRI_TOOLS_VERSION), $CT/busybox ($("$CT/busybox" 2>&1 | head -1 | awk '{print $2}'))"
