package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/test/harness"
)

// holdPlugin is a CNI plugin for tests, last in the chain: its ADD marks that it was
// reached (the bridge and portmap plugins have taken an IP and set their rules by
// then) and holds until keelson, which runs it, is gone; every other command succeeds.
const holdPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD)
  touch %q
  while kill -0 "$PPID" 2>/dev/null; do sleep 0.1; done
  exit 1 ;;
VERSION)
  echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0
`

// keelson killed inside CNI ADD — after host-local reserved the pod's IP and the
// plugins set their iptables rules, before libcni cached the attachment and before
// the sandbox had a record — releases all of it at its next start, from the pending
// record it wrote before ADD (nothing else on the node names that attachment).
func TestKillInsideCNIAddReleasedAtStart(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.NewDir(t, "ktcni-")
	reached := filepath.Join(bin, "add-reached")
	if err := os.WriteFile(filepath.Join(bin, "hold"), []byte(fmt.Sprintf(holdPlugin, reached)), 0o755); err != nil {
		t.Fatal(err)
	}
	k := startWithPlugins(t, "1.1.0", bin, `{"type":"portmap","capabilities":{"portMappings":true}}, {"type":"hold"}`)
	cfg := podConfig(k, "cutshort")
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38096}}
	done := make(chan error, 1)
	go func() {
		_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(reached); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("RunPodSandbox returned before CNI ADD reached the last plugin: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("CNI ADD never reached the last plugin")
		}
	}

	// What ADD has taken so far, and what records it.
	pendingDir := filepath.Join(k.RootDir, "cni", "pending")
	entries, _ := os.ReadDir(pendingDir)
	if len(entries) != 1 {
		t.Fatalf("pending CNI records during ADD: %v, want one", entries)
	}
	id := strings.TrimSuffix(entries[0].Name(), ".json")
	ipamDir := filepath.Join(k.Dir, "ipam", k.Bridge)
	ips := reservationsOf(t, ipamDir, id)
	if len(ips) != 1 {
		t.Fatalf("host-local reservations of %s during ADD: %v, want one", id, ips)
	}
	rules := cni.TaggedRules(k.Bridge, func(s string) bool { return s == id })
	chains := map[[2]string]bool{}
	for _, r := range rules {
		for _, c := range r.Chains {
			chains[[2]string{r.Table, c}] = true
		}
	}
	if len(rules) == 0 || len(chains) == 0 {
		t.Fatalf("no iptables rules or chains of %s during ADD: the test proves nothing\n%v", id, rules)
	}
	if cached, _ := filepath.Glob(filepath.Join(k.RootDir, "cni", "cache", "results", "*"+id+"*")); len(cached) > 0 {
		t.Fatalf("libcni cached the attachment before ADD finished: %v", cached)
	}

	k.Kill()
	if err := <-done; err == nil {
		t.Fatal("RunPodSandbox succeeded although keelson was killed inside CNI ADD")
	}
	k.Start(harness.Options{Registry: reg})

	if left := reservationsOf(t, ipamDir, id); len(left) > 0 {
		t.Errorf("IP reservations of %s after the restart: %v", id, left)
	}
	if left := cni.TaggedRules("", func(s string) bool { return s == id }); len(left) > 0 {
		t.Errorf("iptables rules of %s after the restart: %v", id, left)
	}
	for c := range chains {
		if err := exec.Command("iptables", "-t", c[0], "-S", c[1]).Run(); err == nil {
			t.Errorf("iptables chain %s of %s (table %s) after the restart", c[1], id, c[0])
		}
	}
	if _, err := os.Stat(filepath.Join(pendingDir, id+".json")); err == nil {
		t.Errorf("the pending record of %s outlived the restart", id)
	}
	if !strings.Contains(k.Log(), "CNI: released the network of a sandbox whose creation was cut short") {
		t.Error("keelson did not log the release")
	}
	resp, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(resp.Items) != 0 {
		t.Errorf("pods after the restart: %v %v, want none", resp, err)
	}
	k.CheckNoLeaks(t)
}

// reservationsOf lists the IPs that host-local's store in dir holds for container id.
func reservationsOf(t *testing.T, dir, id string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if owner, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(owner) == id {
			out = append(out, e.Name())
		}
	}
	return out
}
