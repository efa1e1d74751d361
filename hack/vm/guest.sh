#!/usr/bin/env bash
# Runs inside the node VM (as /mnt/run/run.sh, from the image's node-vm-run unit):
# mounts the repository and /opt/keelson from the host, installs keelson the way an
# operator does (make install), points image pulls at the host's test registry and
# runs the node test binary. Its output streams back through the share.
set -uo pipefail
. /mnt/run/env   # REGISTRY (host:port as the guest reaches it), TEST_ARGS
echo "node-vm: $(uname -r), uptime $(cut -d' ' -f1 /proc/uptime) s, $(systemctl is-system-running)"
mkdir -p /keelson /opt/keelson
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro repo /keelson || exit 3
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,ro opt /opt/keelson || exit 3
make -s -C /keelson install || exit 4
for host in docker.io registry.k8s.io quay.io ghcr.io; do
  mkdir -p "/etc/keelson/certs.d/$host"
  printf 'server = "https://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$host" "$REGISTRY" > "/etc/keelson/certs.d/$host/hosts.toml"
done
# A heartbeat on the serial console, apart from the 9p share: the host tells a guest
# that stopped from tests that are slow or stuck by it.
( while sleep 30; do
    echo "node-vm: alive, uptime $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg)" > /dev/console
  done ) &
export KEELSON_NODE_VM=1
cd /keelson/test/node
# shellcheck disable=SC2086
/keelson/bin/node.test -test.v -test.count=1 $TEST_ARGS
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "node-vm: tests exited $rc; processes:"
  ps -eo pid,stat,etime,wchan:22,args --forest | grep -v '\[' | head -120
  if [ "$rc" -eq 2 ]; then # Go's exit status on a test timeout: keelson's goroutines too
    systemctl kill -s QUIT --kill-whom=main keelson; sleep 2
  fi
  echo "node-vm: keelson's journal, last lines:"
  journalctl -u keelson -n 400 --no-pager -o cat
fi
exit "$rc"
