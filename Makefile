# keelson — the two commands a new user types are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS := -buildvcs=false

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/keelson/keelson/pkg/version.Version=$(VERSION)
BIN := bin/keelson
SOCKET ?= /run/keelson/keelson.sock
# Integration tests share 2 cores with containerd and runc; one package at a time.
TEST_FLAGS ?= -count=1 -p 1 -timeout 80m

.PHONY: all build deps k8s cri-tools run install test unit fuzz integration e2e critest test-node test-cluster test-conformance cluster-up cluster-down vm-image bench bench-smoke vet fmt clean deb

all: build

build:
	go build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/agent
	go build -ldflags "-s -w" -o bin/keelson-logger ./cmd/logger

## deps: install Debian packages, containerd, runc and the CNI plugins (idempotent; root)
deps:
	bash hack/install-deps.sh

## run: install what is missing, build, and run keelson in the foreground with a
## supervised containerd and the default CNI config
run: deps build
	@echo "keelson: CRI socket $(SOCKET)"
	@echo "  try: crictl --runtime-endpoint unix://$(SOCKET) version"
	@echo "  or:  go run ./hack/cri --socket $(SOCKET) version"
	exec ./$(BIN) --socket $(SOCKET)

## install: (root) put keelson where a systemd node runs it: binaries in
## $(PREFIX)/bin, the unit, and — only where none exists — the default config and CNI
## config; containerd, runc and the CNI plugins come from `make deps` (/opt/keelson).
## Builds only if bin/ lacks the binaries; run `systemctl enable --now keelson` after.
PREFIX ?= /usr/local
install:
	@[ -x bin/keelson ] && [ -x bin/keelson-logger ] || $(MAKE) build
	install -D -m 0755 bin/keelson $(DESTDIR)$(PREFIX)/bin/keelson
	install -D -m 0755 bin/keelson-logger $(DESTDIR)$(PREFIX)/bin/keelson-logger
	mkdir -p $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local/bin/keelson|$(PREFIX)/bin/keelson|' deploy/systemd/keelson.service > $(DESTDIR)/etc/systemd/system/keelson.service
	install -m 0644 deploy/systemd/keelson.socket $(DESTDIR)/etc/systemd/system/keelson.socket
	[ -e $(DESTDIR)/etc/keelson/config.toml ] || install -D -m 0644 deploy/config.toml $(DESTDIR)/etc/keelson/config.toml
	[ -n "$$(ls $(DESTDIR)/etc/keelson/cni/net.d 2>/dev/null)" ] || install -D -m 0644 deploy/cni/10-keelson.conflist $(DESTDIR)/etc/keelson/cni/net.d/10-keelson.conflist
	if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

## test: everything, exactly as CI runs it (root)
test: deps k8s cri-tools vet unit fuzz integration critest e2e test-cluster test-conformance test-node bench-smoke

## test-node: the node tests in a Debian 12 guest VM (systemd, cgroup v2, AppArmor);
## the first run builds the guest image under /opt/keelson/vm. The guest gets
## /opt/keelson from the host: containerd, runc and CNI plugins (deps), crictl
## (cri-tools; also in the .deb) and kubelet (k8s).
test-node: deps k8s cri-tools build
	bash hack/deb.sh $(VERSION)
	go test -c -o bin/node.test ./test/node
	go run ./hack/vm

## deb: a Debian package of keelson with the pinned containerd, runc, crictl and CNI
## plugins (bin/keelson_<version>_amd64.deb; hack/deb.sh says what goes where;
## crictl comes from cri-tools)
deb: deps cri-tools build
	bash hack/deb.sh $(VERSION)

vm-image:
	go run ./hack/vm --image

## k8s: kubelet, kube-apiserver, kubectl, kube-scheduler, kube-controller-manager,
## kube-proxy, etcd and coredns for the e2e and cluster tests; e2e.test, ginkgo, agnhost
## and upstream busybox for test-conformance (KEELSON_BUILD_CONFORMANCE=0 skips them);
## cached under the prefix
k8s:
	bash hack/build-k8s.sh

## cri-tools: crictl and critest (cri-tools $CRI_TOOLS_VERSION) in /opt/keelson/bin, and
## Debian's dynamic busybox that critest's busybox image is built from (cached)
cri-tools:
	bash hack/build-cri-tools.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...

unit:
	go test $(TEST_FLAGS) ./pkg/... ./cmd/... ./test/images/... ./test/registry/...
	go test $(TEST_FLAGS) -tags failpoints ./pkg/failpoint/

## fuzz: every fuzz target for a few seconds (FUZZTIME=10m for a real run)
fuzz:
	bash hack/fuzz.sh

integration:
	go test $(TEST_FLAGS) ./test/integration/...

## e2e: keelson under a real kubelet, standalone and with a one-node control plane
## (the whole verbose output goes to bin/e2e.log; on a failure its logged diagnostics are printed too)
e2e:
	@mkdir -p bin
	go test $(TEST_FLAGS) -v ./test/e2e/... 2>&1 | tee bin/e2e.log | grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|e2e:)|_test.go:'; \
	  rc=$${PIPESTATUS[0]}; \
	  if [ $$rc -ne 0 ]; then echo "--- e2e diagnostics (bin/e2e.log) ---"; grep -E -A40 'diagnostics of|--- keelson log' bin/e2e.log | head -400; fi; \
	  exit $$rc

## test-cluster: keelson as the runtime of a 3-node cluster (each node a network namespace
## with its own keelson, kubelet and kube-proxy; etcd, apiserver, scheduler and
## controller-manager on the host): spreading, scaling, pod-to-pod, a Service, a
## DaemonSet, Jobs, a rolling update, drain, a node going down and coming back
test-cluster: deps k8s build
	@mkdir -p bin
	go test $(TEST_FLAGS) -v -run '^TestCluster$$' ./test/cluster/... 2>&1 | tee bin/cluster.log | grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|cluster:)|_test.go:'; \
	  exit $${PIPESTATUS[0]}

## test-conformance: Kubernetes' own node conformance specs (every `[sig-node] ...
## [Conformance]` spec of test/e2e at the pinned release) against the 3-node cluster,
## their images built locally; parallel specs in 8 ginkgo processes, then the serial
## ones. Ginkgo's output and JSON reports in bin/conformance/; prints each failure and
## `conformance: N passed, N failed, N skipped`. KEELSON_CONFORMANCE_FOCUS=<regexp>
## runs a subset.
test-conformance: deps k8s build
	@mkdir -p bin
	go test -count=1 -timeout 90m -v -run '^TestConformance$$' ./test/cluster/... 2>&1 | tee bin/conformance.log | grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|conformance:)|_test.go:'; \
	  exit $${PIPESTATUS[0]}

## cluster-up: the 3-node cluster of test-cluster, left running for you (state in
## /run/keelson-cluster: `. /run/keelson-cluster/env` sets KUBECONFIG and lists each
## node's keelson socket); cluster-down stops it (a SIGTERM during start-up takes
## effect once the cluster is up) and removes everything it made. test-cluster and
## test-conformance refuse to run while it is up: they use the same addresses.
CLUSTER_DIR ?= /run/keelson-cluster
cluster-up: deps k8s build
	@mkdir -p bin $(CLUSTER_DIR)
	@if [ -f $(CLUSTER_DIR)/pid ] && kill -0 $$(cat $(CLUSTER_DIR)/pid) 2>/dev/null; then echo "cluster already up: make cluster-down"; exit 1; fi
	go test -c -o bin/cluster.test ./test/cluster
	rm -f $(CLUSTER_DIR)/ready
	(cd test/cluster && exec setsid ../../bin/cluster.test -test.run '^TestUp$$' -test.v -test.timeout 0 \
	  -cluster.hold-dir $(CLUSTER_DIR)) > $(CLUSTER_DIR)/log 2>&1 < /dev/null & echo $$! > $(CLUSTER_DIR)/pid
	@for i in $$(seq 300); do \
	  [ -f $(CLUSTER_DIR)/ready ] && { cat $(CLUSTER_DIR)/env; exit 0; }; \
	  kill -0 $$(cat $(CLUSTER_DIR)/pid) 2>/dev/null || { tail -30 $(CLUSTER_DIR)/log; exit 1; }; \
	  sleep 1; done; echo "cluster not up after 5 min: see $(CLUSTER_DIR)/log"; exit 1

cluster-down:
	@pid=$$(cat $(CLUSTER_DIR)/pid 2>/dev/null); \
	  if [ -z "$$pid" ] || ! grep -qa cluster.test /proc/$$pid/cmdline 2>/dev/null; then \
	    echo "no cluster running ($(CLUSTER_DIR)/pid)"; rm -f $(CLUSTER_DIR)/pid $(CLUSTER_DIR)/ready $(CLUSTER_DIR)/env; exit 0; fi; \
	  kill -TERM $$pid; \
	  for i in $$(seq 600); do kill -0 $$pid 2>/dev/null || break; sleep 1; done; \
	  if kill -0 $$pid 2>/dev/null; then kill -KILL $$pid; echo "cluster-down: killed; the next test run sweeps what is left"; fi; \
	  rm -f $(CLUSTER_DIR)/pid $(CLUSTER_DIR)/ready $(CLUSTER_DIR)/env; tail -3 $(CLUSTER_DIR)/log

## critest: Kubernetes' CRI validation suite against keelson, every image built
## locally (test/critest; about 4 min; output, report and logs in bin/critest/).
## Prints each failed spec, expected or not, and `critest: N passed, N failed, N skipped`;
## fails when critest cannot run or a spec fails that test/critest's expectedFailures
## does not list. KEELSON_CRITEST_FOCUS=<regexp> runs a subset.
critest: cri-tools build
	go test -count=1 -timeout 70m -v ./test/critest/

## bench: keelson and containerd's built-in CRI side by side (see README, Performance)
bench: deps
	go run ./hack/bench --json bench.json --png docs/bench.png --cycles 1000

## bench-smoke: the benchmark end to end with a few iterations (no timing assertions)
bench-smoke:
	go run ./hack/bench --smoke --cycles 3 --png bin/bench-smoke.png

clean:
	rm -rf bin
