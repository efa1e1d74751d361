package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
)

func podConfig(k *harness.Keelson, name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "test", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(k.Dir, "logs", name),
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10"},
			Searches: []string{"test.svc.cluster.local", "svc.cluster.local"},
			Options:  []string{"ndots:5"},
		},
		Labels:      map[string]string{"app": name, "suite": "sandbox"},
		Annotations: map[string]string{"note": "keelson-test"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: k.CgroupParent,
			// As kubelet sends it for a pod without shareProcessNamespace.
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}},
		},
	}
}

func runPod(t *testing.T, k *harness.Keelson, cfg *runtimeapi.PodSandboxConfig) string {
	t.Helper()
	resp, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.PodSandboxId
}

func podStatus(t *testing.T, k *harness.Keelson, id string) (*runtimeapi.PodSandboxStatus, map[string]any) {
	t.Helper()
	resp, err := k.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	var info map[string]any
	_ = json.Unmarshal([]byte(resp.Info["info"]), &info)
	return resp.Status, info
}

func stopAndRemovePod(t *testing.T, k *harness.Keelson, id string) {
	t.Helper()
	if _, err := k.Runtime.StopPodSandbox(harness.Ctx(t), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox: %v", err)
	}
	if _, err := k.Runtime.RemovePodSandbox(harness.Ctx(t), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
}

func dial(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

// withPause makes a pod share one PID namespace among its containers, which gives
// it a pause process (the other pods have none).
func withPause(cfg *runtimeapi.PodSandboxConfig) *runtimeapi.PodSandboxConfig {
	cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
	return cfg
}

// podHostname reads the UTS host name of a pod: through its pause process, or in its
// pinned UTS namespace.
func podHostname(info map[string]any) (string, error) {
	if pid := pidOf(info); pid > 0 {
		return harness.Hostname(pid)
	}
	ns, _ := info["namespaces"].(map[string]any)
	path, _ := ns["uts"].(string)
	var name string
	err := harness.InNamespace(path, syscall.CLONE_NEWUTS, func() error {
		var err error
		name, err = os.Hostname()
		return err
	})
	return name, err
}

func pidOf(info map[string]any) int {
	f, _ := info["pid"].(float64)
	return int(f)
}

func TestPodSandboxLifecycle(t *testing.T) {
	k := startWithRegistry(t, reg)
	ctx := harness.Ctx(t)
	subnet := netip.MustParsePrefix(k.Subnet)

	cfgA := podConfig(k, "pod-a")
	cfgA.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 38080}}
	a := runPod(t, k, cfgA)
	b := runPod(t, k, podConfig(k, "pod-b"))

	stA, infoA := podStatus(t, k, a)
	stB, _ := podStatus(t, k, b)
	if stA.State != runtimeapi.PodSandboxState_SANDBOX_READY || stA.Metadata.Name != "pod-a" || stA.Labels["app"] != "pod-a" ||
		stA.Annotations["note"] != "keelson-test" || stA.RuntimeHandler != "runc" || stA.CreatedAt == 0 {
		t.Errorf("status of pod-a = %+v", stA)
	}
	ipA, errA := netip.ParseAddr(stA.GetNetwork().GetIp())
	ipB, errB := netip.ParseAddr(stB.GetNetwork().GetIp())
	if errA != nil || errB != nil || !subnet.Contains(ipA) || !subnet.Contains(ipB) || ipA == ipB {
		t.Fatalf("pod IPs %v %v: want two different addresses in %s", stA.Network, stB.Network, subnet)
	}
	if infoA["infraLess"] != true || infoA["runtimeSpec"] == nil || infoA["cniResult"] == nil {
		t.Errorf("verbose info lacks pid, spec or CNI result: %v", infoA)
	}

	// The same pod again is refused with a clear error.
	_, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfgA})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "pod-a_test_uid-pod-a_0") {
		t.Errorf("duplicate pod: %v, want AlreadyExists naming it", err)
	}

	// Files and the UTS host name follow the request.
	dir := filepath.Join(k.RootDir, "sandboxes", a)
	resolv, _ := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	if want := "search test.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n"; string(resolv) != want {
		t.Errorf("resolv.conf = %q, want %q", resolv, want)
	}
	if h, _ := os.ReadFile(filepath.Join(dir, "hostname")); string(h) != "pod-a\n" {
		t.Errorf("hostname file = %q", h)
	}
	if name, err := podHostname(infoA); err != nil || name != "pod-a" {
		t.Errorf("UTS host name = %q, %v", name, err)
	}

	// A server in the pod's network namespace is reachable from the host at the pod
	// IP, and through the host port.
	netnsA := filepath.Join(k.StateDir, "netns", a)
	harness.ListenInNetNS(t, netnsA, ":8080", "hello from pod-a")
	if got, err := dial(net.JoinHostPort(ipA.String(), "8080")); err != nil || got != "hello from pod-a" {
		t.Errorf("pod IP: %q, %v", got, err)
	}
	gw := subnet.Addr().Next() // the bridge's address on the host
	if got, err := dial(net.JoinHostPort(gw.String(), "38080")); err != nil || got != "hello from pod-a" {
		t.Errorf("host port: %q, %v", got, err)
	}

	// List filters.
	list := func(f *runtimeapi.PodSandboxFilter) []string {
		resp, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range resp.Items {
			ids = append(ids, p.Id)
		}
		return ids
	}
	if got := list(nil); len(got) != 2 {
		t.Errorf("list all = %v", got)
	}
	if got := list(&runtimeapi.PodSandboxFilter{Id: a[:12]}); len(got) != 1 || got[0] != a {
		t.Errorf("list by ID prefix = %v", got)
	}
	if got := list(&runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{"app": "pod-b"}}); len(got) != 1 || got[0] != b {
		t.Errorf("list by label = %v", got)
	}
	// Status by ID prefix works too (crictl passes truncated IDs).
	if st, _ := podStatus(t, k, a[:12]); st.Id != a {
		t.Errorf("status by prefix = %v", st.Id)
	}

	// Stop: NOTREADY, idempotent.
	for range 2 {
		if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: a}); err != nil {
			t.Fatalf("StopPodSandbox: %v", err)
		}
	}
	if st, _ := podStatus(t, k, a); st.State != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("after stop: %v", st.State)
	}
	if got := list(&runtimeapi.PodSandboxFilter{State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}}); len(got) != 1 || got[0] != b {
		t.Errorf("list READY = %v", got)
	}
	for range 2 {
		if _, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: a}); err != nil {
			t.Fatalf("RemovePodSandbox: %v", err)
		}
	}
	if _, err := k.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: a}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed pod: %v, want NotFound", err)
	}
	// Removing a READY pod stops it first.
	if _, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: b}); err != nil {
		t.Fatal(err)
	}
	// Unknown IDs: success.
	if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "nosuchpod"}); err != nil {
		t.Errorf("stop unknown: %v", err)
	}
	if _, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "nosuchpod"}); err != nil {
		t.Errorf("remove unknown: %v", err)
	}
	// The name is free again.
	c := runPod(t, k, cfgA)
	stopAndRemovePod(t, k, c)
	k.CheckNoLeaks(t)
}

func TestHostNetworkPod(t *testing.T) {
	k := startWithRegistry(t, reg)
	cfg := withPause(podConfig(k, "hostnet"))
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	id := runPod(t, k, cfg)
	st, info := podStatus(t, k, id)
	if st.GetNetwork().GetIp() != "" {
		t.Errorf("host-network pod has a pod IP: %v", st.Network)
	}
	podNS, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pidOf(info)))
	hostNS, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", k.Cmd.Process.Pid)) // keelson runs in the host's
	if err1 != nil || err2 != nil || podNS != hostNS {
		t.Errorf("host-network pod's netns %s != host's %s (%v %v)", podNS, hostNS, err1, err2)
	}
	// A net.* sysctl would change the node: refused.
	cfg2 := podConfig(k, "hostnet-sysctl")
	cfg2.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	cfg2.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "0"}
	if _, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg2}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("net sysctl with host network: %v", err)
	}
	stopAndRemovePod(t, k, id)
	k.CheckNoLeaks(t)
}

func TestPodSysctlsAndBadRequests(t *testing.T) {
	k := startWithRegistry(t, reg)
	cfg := podConfig(k, "sysctl")
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "81"}
	id := runPod(t, k, cfg)
	var got []byte
	err := harness.InNamespace(filepath.Join(k.StateDir, "netns", id), syscall.CLONE_NEWNET, func() error {
		var err error
		got, err = os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
		return err
	})
	if err != nil || strings.TrimSpace(string(got)) != "81" {
		t.Errorf("pod sysctl not applied in the pod netns: %q %v", got, err)
	}
	stopAndRemovePod(t, k, id)

	for name, mutate := range map[string]func(c *runtimeapi.PodSandboxConfig){
		"no metadata":  func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil },
		"no name":      func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" },
		"no uid":       func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "" },
		"relative log": func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "logs" },
	} {
		c := podConfig(k, "bad")
		mutate(c)
		if _, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: c}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	_, err = k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(k, "h"), RuntimeHandler: "kata"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kata") {
		t.Errorf("unknown handler: %v", err)
	}
	k.CheckNoLeaks(t)
}

// startWithPlugins starts keelson on a bridge network (CNI spec version) followed by
// the given plugins (JSON objects joined by commas), looked for first in binDir.
func startWithPlugins(t *testing.T, version, binDir, plugins string) *harness.Keelson {
	return startWithRegistry(t, reg, func(o *harness.Options) {
		o.ExtraCNIBinDir = binDir
		o.CNIConfList = func(k *harness.Keelson) string {
			return fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 %s]}`, version, k.Bridge, k.Bridge, k.Subnet, filepath.Join(k.Dir, "ipam"), plugins)
		}
	})
}

// startWithFailingPlugin starts keelson on a bridge network whose last plugin,
// after those in between (JSON objects, each followed by a comma), is failingPlugin.
func startWithFailingPlugin(t *testing.T, between string) *harness.Keelson {
	bin := harness.NewDir(t, "ktcni-")
	if err := os.WriteFile(filepath.Join(bin, "failer"), []byte(failingPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	return startWithPlugins(t, "1.0.0", bin, between+`{"type":"failer"}`)
}

// failingPlugin is a CNI plugin that fails ADD (after the bridge already set things
// up) and succeeds at everything else.
const failingPlugin = `#!/bin/sh
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"1.0.0","code":999,"msg":"injected failure"}'
  exit 1
fi
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'
fi
exit 0
`

func TestSandboxFailuresLeaveNothing(t *testing.T) {
	harness.RequireRoot(t)
	t.Run("missing sandbox image", func(t *testing.T) {
		k := startWithRegistry(t, reg, func(o *harness.Options) { o.SandboxImage = "registry.k8s.io/pause:0.0-missing" })
		_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: withPause(podConfig(k, "noimage"))})
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "pause:0.0-missing") {
			t.Errorf("RunPodSandbox: %v, want NotFound naming the image", err)
		}
		k.CheckNoLeaks(t)
	})
	t.Run("invalid CNI config", func(t *testing.T) {
		k := startWithRegistry(t, reg, func(o *harness.Options) {
			o.CNIConfList = func(*harness.Keelson) string {
				return `{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"nosuchplugin"}]}`
			}
		})
		_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(k, "nonet")})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "nosuchplugin") {
			t.Errorf("RunPodSandbox: %v, want FailedPrecondition naming the missing plugin", err)
		}
		k.CheckNoLeaks(t)
	})
	t.Run("CNI plugin fails on ADD", func(t *testing.T) {
		k := startWithFailingPlugin(t, `{"type":"portmap","capabilities":{"portMappings":true}},`)
		cfg := podConfig(k, "cnifail")
		cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38081}}
		_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Errorf("RunPodSandbox: %v, want the plugin's error", err)
		}
		k.CheckNoLeaks(t)
		// The name is free for kubelet's retry.
		resp, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
		if err != nil || len(resp.Items) != 0 {
			t.Errorf("a failed RunPodSandbox left a sandbox: %v %v", resp, err)
		}
	})
}

func TestSandboxSurvivesRestart(t *testing.T) {
	k := startWithRegistry(t, reg)
	id := runPod(t, k, withPause(podConfig(k, "survivor")))
	light := runPod(t, k, podConfig(k, "survivor-without-pause"))
	st0, info0 := podStatus(t, k, id)

	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
		} else {
			k.Kill()
		}
		k.Start(harness.Options{Registry: reg})
		st, info := podStatus(t, k, id)
		if st.State != runtimeapi.PodSandboxState_SANDBOX_READY || st.Network.GetIp() != st0.Network.GetIp() || pidOf(info) != pidOf(info0) {
			t.Fatalf("after %s: %+v pid %d (was %+v pid %d)", how, st, pidOf(info), st0, pidOf(info0))
		}
		if st, _ := podStatus(t, k, light); st.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("pod without pause after %s: %v", how, st.State)
		}
	}
	// The name stays reserved across restarts.
	if _, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: withPause(podConfig(k, "survivor"))}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate after restart: %v", err)
	}
	// The infra process dying makes the sandbox NOTREADY.
	if err := syscall.Kill(pidOf(info0), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := podStatus(t, k, id)
		if st.State == runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sandbox still READY after its pause process was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopAndRemovePod(t, k, id)
	stopAndRemovePod(t, k, light)
	k.CheckNoLeaks(t)
}

// The leak checker itself must see what a running pod holds, or its silence in the
// other tests means nothing.
func TestLeakCheckerSeesARunningPod(t *testing.T) {
	k := startWithRegistry(t, reg)
	cfg := withPause(podConfig(k, "leaky"))
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38082}}
	id := runPod(t, k, cfg)
	leaks := strings.Join(k.Leaks(t), "\n")
	for _, want := range []string{"netns", "IP ", "iptables nat rule", "containerd container " + id, "containerd task " + id, "cgroup ", "Active snapshot"} {
		if !strings.Contains(leaks, want) {
			t.Errorf("leak checker misses %q while a pod runs; it reports:\n%s", want, leaks)
		}
	}
	stopAndRemovePod(t, k, id)
	k.CheckNoLeaks(t)
}

// What a RunPodSandbox that died before its containerd record existed leaves behind
// (netns, CNI attachment with its IP and iptables rules, files) is collected at the
// next start.
func TestOrphanedPodNetworkCollectedAtStart(t *testing.T) {
	k := startWithRegistry(t, reg)
	cfg := podConfig(k, "orphan")
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38083}}
	id := runPod(t, k, cfg)
	k.Kill()
	// Remove the record behind keelson's back, as if it had never been written.
	cl := k.ContainerdClient(t)
	ctx := harness.Ctx(t)
	c, err := cl.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerdProcessKill); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Delete(ctx, containerdSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	if len(k.Leaks(t)) == 0 {
		t.Fatal("expected leftovers before the restart")
	}
	k.Start(harness.Options{Registry: reg})
	k.CheckNoLeaks(t)
}
