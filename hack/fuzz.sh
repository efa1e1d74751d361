#!/usr/bin/env bash
# Runs every fuzz target of keelson for a short, bounded time each (FUZZTIME,
# default 5s): request validation, config parsing, CRI log parsing and the registry
# host directory of image references. A failure leaves the failing input under the
# package's testdata/fuzz/<target>/: commit it, and it is replayed by every `go test`.
# Longer runs: FUZZTIME=10m bash hack/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
FUZZTIME=${FUZZTIME:-5s}
targets=(
  "./pkg/validate FuzzPodSandbox"
  "./pkg/validate FuzzPodSandboxProto"
  "./pkg/validate FuzzContainerPaths"
  "./pkg/config FuzzDecode"
  "./pkg/crilog FuzzParseLine"
  "./pkg/images FuzzNormalize"
)
for t in "${targets[@]}"; do
  read -r pkg name <<<"$t"
  echo "fuzz: $name ($pkg, $FUZZTIME)"
  go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" | grep -v '^fuzz: elapsed' || exit 1
done
