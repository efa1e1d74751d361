package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func condition(st *runtimeapi.StatusResponse, typ string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == typ {
			return c
		}
	}
	return nil
}

// waitCondition polls Status until the condition has the wanted value.
func waitCondition(t *testing.T, k *harness.Keelson, typ string, want bool, timeout time.Duration) *runtimeapi.RuntimeCondition {
	t.Helper()
	var last *runtimeapi.RuntimeCondition
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := k.Runtime.Status(ctxT(t), &runtimeapi.StatusRequest{})
		if err == nil {
			if last = condition(st, typ); last != nil && last.Status == want {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not become %v within %s; last: %v", typ, want, timeout, last)
	return nil
}

// containerdBinaries are the containerds keelson must work with: the pinned upstream
// one and Debian's 1.6 (when installed).
func containerdBinaries(t *testing.T) map[string]string {
	bins := map[string]string{"upstream": harness.Prefix + "/bin/containerd"}
	if _, err := os.Stat("/usr/bin/containerd"); err == nil {
		bins["debian"] = "/usr/bin/containerd"
	}
	return bins
}

func TestSupervisedContainerd(t *testing.T) {
	harness.RequireRoot(t)
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) {
			opts := harness.Options{ContainerdBinary: bin}
			k := harness.Prepare(t, opts)
			k.Start(opts)
			ctx := ctxT(t)

			v, err := k.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if v.RuntimeName != "keelson" || v.RuntimeApiVersion != "v1" {
				t.Errorf("Version = %+v", v)
			}
			st, err := k.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if c := condition(st, runtimeapi.RuntimeReady); c == nil || !c.Status {
				t.Errorf("RuntimeReady = %v", c)
			}
			if c := condition(st, runtimeapi.NetworkReady); c == nil || !c.Status {
				t.Errorf("NetworkReady = %v", c)
			}
			names := map[string]bool{}
			for _, h := range st.RuntimeHandlers {
				names[h.Name] = true
			}
			if !names["runc"] || !names[""] {
				t.Errorf("runtime handlers = %v, want runc and the default (\"\")", st.RuntimeHandlers)
			}
			if st.Info["containerdVersion"] == "" {
				t.Errorf("verbose info lacks containerdVersion: %v", st.Info)
			}
			rc, err := k.Runtime.RuntimeConfig(ctx, &runtimeapi.RuntimeConfigRequest{})
			if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
				t.Errorf("RuntimeConfig = %v, %v", rc, err)
			}
			if _, err := k.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{
				RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "10.244.0.0/24"}},
			}); err != nil {
				t.Errorf("UpdateRuntimeConfig: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(k.RootDir, "pod-cidr")); err != nil || strings.TrimSpace(string(b)) != "10.244.0.0/24" {
				t.Errorf("pod CIDR not persisted: %q %v", b, err)
			}
			if _, err := k.Runtime.UpdateRuntimeConfig(ctx, &runtimeapi.UpdateRuntimeConfigRequest{
				RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: "not-a-cidr"}},
			}); codeOf(err) != "InvalidArgument" {
				t.Errorf("bad pod CIDR: want InvalidArgument, got %v", err)
			}

			fi, err := os.Stat(k.Socket)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
				t.Errorf("socket mode = %v, want 0660 socket", fi.Mode())
			}

			pids := k.ContainerdPids()
			if len(pids) != 1 {
				t.Fatalf("containerd children = %v, want one", pids)
			}
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatalf("SIGTERM: keelson exit = %v, want 0\n%s", err, k.Log())
			}
			if harness.ProcessAlive(pids[0]) {
				t.Errorf("containerd (pid %d) still runs after keelson stopped", pids[0])
			}
			if _, err := os.Stat(k.Socket); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
		})
	}
}

func codeOf(err error) string {
	if err == nil {
		return "OK"
	}
	return grpcCode(err)
}

func TestSecondInstanceRefused(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{})
	k.Start(harness.Options{})

	// Same config (same state dir and socket): refused with a clear message.
	out, err := exec.Command(harness.Binary(t), "--config", k.Config).CombinedOutput()
	if err == nil {
		t.Fatalf("second keelson started:\n%s", out)
	}
	if !strings.Contains(string(out), "already uses state dir") {
		t.Errorf("unclear refusal:\n%s", out)
	}
	// Own state dir but the same socket: refused too.
	other := filepath.Join(k.Dir, "other")
	out, err = exec.Command(harness.Binary(t), "--config", k.Config, "--state-dir", other, "--root-dir", other).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already uses socket") {
		t.Errorf("second keelson on the same socket: err=%v\n%s", err, out)
	}
	// The first one is unharmed.
	if _, err := k.Runtime.Version(ctxT(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Errorf("first keelson broken: %v", err)
	}
}

func TestStaleSocketRemovedAndContainerdAdopted(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{})
	k.Start(harness.Options{})
	before := k.ContainerdPids()
	k.Kill() // leaves the socket file behind, and containerd running
	if _, err := os.Stat(k.Socket); err != nil {
		t.Fatalf("expected a stale socket after kill -9: %v", err)
	}
	if len(before) != 1 || !harness.ProcessAlive(before[0]) {
		t.Fatalf("containerd should outlive a crashed keelson: %v", before)
	}
	k.Start(harness.Options{})
	if _, err := k.Runtime.Version(ctxT(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("restart over a stale socket: %v", err)
	}
	if after := k.ContainerdPids(); len(after) != 1 || after[0] != before[0] {
		t.Errorf("containerd pids %v after restart, want the adopted %v", after, before)
	}
	if !strings.Contains(k.Log(), "Adopted the containerd") {
		t.Errorf("adoption not logged")
	}
	// The adopted containerd is still supervised: stopping keelson stops it.
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if harness.ProcessAlive(before[0]) {
		t.Errorf("adopted containerd still runs after SIGTERM")
	}
}

func TestContainerdKilledIsRestarted(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{})
	k.Start(harness.Options{})
	waitCondition(t, k, runtimeapi.RuntimeReady, true, 10*time.Second)
	pids := k.ContainerdPids()
	if len(pids) != 1 {
		t.Fatalf("containerd children = %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Not ready while it is down (the supervisor reports the exit at once)...
	waitCondition(t, k, runtimeapi.RuntimeReady, false, 10*time.Second)
	// ...then restarted and ready again.
	c := waitCondition(t, k, runtimeapi.RuntimeReady, true, 30*time.Second)
	if c.Reason != "" {
		t.Errorf("ready condition keeps a reason: %v", c)
	}
	now := k.ContainerdPids()
	if len(now) != 1 || now[0] == pids[0] {
		t.Errorf("containerd pids after restart = %v (was %v)", now, pids)
	}
	if !strings.Contains(k.Log(), "Restarting supervised containerd") {
		t.Errorf("restart not logged")
	}
}

func TestNetworkReadyFollowsCNIConfig(t *testing.T) {
	harness.RequireRoot(t)
	opts := harness.Options{NoCNIConfig: true}
	k := harness.Prepare(t, opts)
	k.Start(opts)
	c := waitCondition(t, k, runtimeapi.NetworkReady, false, 5*time.Second)
	if c.Reason != "NetworkPluginNotReady" || !strings.Contains(c.Message, k.CNIDir) {
		t.Errorf("not-ready condition should say why and where: %v", c)
	}
	if rc := waitCondition(t, k, runtimeapi.RuntimeReady, true, 5*time.Second); rc == nil {
		t.Fatal("runtime not ready")
	}
	k.WriteCNIConfig()
	waitCondition(t, k, runtimeapi.NetworkReady, true, 10*time.Second)
	// A config naming a plugin that is not installed is not usable.
	if err := os.WriteFile(filepath.Join(k.CNIDir, "05-bad.conflist"),
		[]byte(`{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"no-such-plugin"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The bad file sorts first but is skipped: the valid one is still used.
	time.Sleep(500 * time.Millisecond)
	waitCondition(t, k, runtimeapi.NetworkReady, true, 5*time.Second)
	if err := os.Remove(filepath.Join(k.CNIDir, "10-test.conflist")); err != nil {
		t.Fatal(err)
	}
	c = waitCondition(t, k, runtimeapi.NetworkReady, false, 10*time.Second)
	if !strings.Contains(c.Message, "no-such-plugin") {
		t.Errorf("message should name the missing plugin: %v", c)
	}
}

func TestExternalContainerd(t *testing.T) {
	harness.RequireRoot(t)
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) {
			ext := harness.StartContainerd(t, bin)
			opts := harness.Options{ContainerdAddress: ext.Address}
			k := harness.Prepare(t, opts)
			k.Start(opts)
			st, err := k.Runtime.Status(ctxT(t), &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if c := condition(st, runtimeapi.RuntimeReady); !c.Status {
				t.Errorf("RuntimeReady = %v", c)
			}
			if st.Info["containerdAddress"] != ext.Address {
				t.Errorf("not using the external containerd: %v", st.Info)
			}
			if len(k.ContainerdPids()) != 0 {
				t.Errorf("keelson started its own containerd although one was given")
			}
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if !harness.ProcessAlive(ext.Pid()) {
				t.Errorf("keelson's shutdown stopped the external containerd")
			}
		})
	}
}

func TestBadConfigRefused(t *testing.T) {
	harness.RequireRoot(t)
	for _, tc := range []struct{ name, extra, want string }{
		{"unknown key", "\n[images]\nsandbox_imag = \"x\"\n", `images.sandbox_imag`},
		{"tcp without tls", "\n[grpc]\ntcp_address = \"127.0.0.1:0\"\n", "needs mutual TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := harness.Prepare(t, harness.Options{})
			cfg, err := os.ReadFile(k.Config)
			if err != nil {
				t.Fatal(err)
			}
			text := string(cfg)
			// Keys go into the generated config's existing tables.
			table, key, _ := strings.Cut(strings.TrimPrefix(tc.extra, "\n"), "\n")
			text = strings.Replace(text, table+"\n", table+"\n  "+key, 1)
			if err := os.WriteFile(k.Config, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(harness.Binary(t), "--config", k.Config).CombinedOutput()
			if err == nil {
				t.Fatalf("keelson accepted a bad config:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("error should say %q:\n%s", tc.want, out)
			}
			if _, err := os.Stat(k.Socket); err == nil {
				t.Errorf("a refused config still created the socket")
			}
		})
	}
}

func TestSignals(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{})
	k.Start(harness.Options{})
	ctx := ctxT(t)

	// SIGHUP reloads the log level from the file: at 6 request bodies are logged
	// (TestReloadPerKey covers the other keys).
	k.Reload(t, "log_level = 4", "log_level = 6")
	if _, err := k.Runtime.Version(ctx, &runtimeapi.VersionRequest{Version: "hup-marker"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(k.Log(), "hup-marker") {
		t.Errorf("after SIGHUP to log_level 6 the request body is not logged")
	}

	// SIGUSR1 dumps goroutine stacks.
	if err := k.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(k.Log(), "goroutine dump") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(k.Log(), "goroutine dump") || !strings.Contains(k.Log(), "goroutine 1 [") {
		t.Errorf("SIGUSR1 did not dump stacks")
	}
	// Still serving afterwards.
	if _, err := k.Runtime.Status(ctx, &runtimeapi.StatusRequest{}); err != nil {
		t.Errorf("after signals: %v", err)
	}
}
