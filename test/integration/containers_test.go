package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/crilog"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// pod is a running sandbox for container tests.
type pod struct {
	k   *harness.Keelson
	id  string
	cfg *runtimeapi.PodSandboxConfig
}

func newPod(t *testing.T, k *harness.Keelson, name string, mutate ...func(*runtimeapi.PodSandboxConfig)) *pod {
	t.Helper()
	cfg := podConfig(k, name)
	for _, m := range mutate {
		m(cfg)
	}
	return &pod{k: k, id: runPod(t, k, cfg), cfg: cfg}
}

func ctrConfig(name, image string, cmd ...string) *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Labels:   map[string]string{"ctr": name},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
}

func (p *pod) create(t *testing.T, cfg *runtimeapi.ContainerConfig) (string, error) {
	t.Helper()
	resp, err := p.k.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// run creates and starts a container and returns its ID.
func (p *pod) run(t *testing.T, cfg *runtimeapi.ContainerConfig) string {
	t.Helper()
	id, err := p.create(t, cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Metadata.Name, err)
	}
	if _, err := p.k.Runtime.StartContainer(harness.Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Metadata.Name, err)
	}
	return id
}

func (p *pod) logPath(cfg *runtimeapi.ContainerConfig) string {
	return filepath.Join(p.cfg.LogDirectory, cfg.LogPath)
}

func ctrStatus(t *testing.T, k *harness.Keelson, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := k.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

func waitExited(t *testing.T, k *harness.Keelson, id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := ctrStatus(t, k, id)
		if st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not exit within %s: %+v", id, timeout, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func execSync(t *testing.T, k *harness.Keelson, id string, timeout int64, cmd ...string) *runtimeapi.ExecSyncResponse {
	t.Helper()
	resp, err := k.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
	if err != nil {
		t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	return resp
}

// waitLog waits until the container's CRI log holds every wanted line.
func waitLog(t *testing.T, path string, want ...string) []crilog.Line {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines, _ := crilog.ReadAll(path)
		have := map[string]bool{}
		for _, l := range lines {
			have[l.Stream+":"+string(l.Content)] = true
		}
		missing := ""
		for _, w := range want {
			if !have[w] {
				missing = w
				break
			}
		}
		if missing == "" {
			return lines
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("log %s lacks %q:\n%s", path, missing, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stopCtr(t *testing.T, k *harness.Keelson, id string, timeout int64) {
	t.Helper()
	if _, err := k.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
}

func removeCtr(t *testing.T, k *harness.Keelson, id string) {
	t.Helper()
	if _, err := k.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
}

func containerTestKeelson(t *testing.T) *harness.Keelson {
	k := startWithRegistry(t, reg)
	mustPull(t, k, images.Busybox)
	return k
}

func TestContainerLifecycle(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "life")
	cfg := ctrConfig("main", images.Busybox, "sh", "-c", "trap '' TERM; echo out; echo err >&2; while :; do sleep 1; done")
	id, err := p.create(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := ctrStatus(t, k, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_CREATED || st.Metadata.Name != "main" || st.CreatedAt == 0 ||
		st.ImageId == "" || st.ImageRef == "" || st.Image.Image != images.Busybox || st.LogPath != p.logPath(cfg) {
		t.Errorf("created status = %+v", st)
	}
	// The same name in the same pod is refused.
	if _, err := p.create(t, cfg); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate container: %v", err)
	}
	if _, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	st = ctrStatus(t, k, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 || st.User.GetLinux() == nil {
		t.Errorf("running status = %+v", st)
	}
	if _, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second start: %v, want FailedPrecondition", err)
	}
	waitLog(t, p.logPath(cfg), "stdout:out", "stderr:err")

	if r := execSync(t, k, id, 0, "echo", "hi"); string(r.Stdout) != "hi\n" || r.ExitCode != 0 {
		t.Errorf("exec echo = %q %d", r.Stdout, r.ExitCode)
	}
	if r := execSync(t, k, id, 0, "sh", "-c", "echo e >&2; exit 3"); string(r.Stderr) != "e\n" || r.ExitCode != 3 {
		t.Errorf("exec exit 3 = %q %d", r.Stderr, r.ExitCode)
	}

	list := func(f *runtimeapi.ContainerFilter) int {
		resp, err := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Containers)
	}
	if list(nil) != 1 || list(&runtimeapi.ContainerFilter{Id: id[:10]}) != 1 || list(&runtimeapi.ContainerFilter{PodSandboxId: p.id}) != 1 ||
		list(&runtimeapi.ContainerFilter{LabelSelector: map[string]string{"ctr": "main"}}) != 1 ||
		list(&runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_EXITED}}) != 0 ||
		list(&runtimeapi.ContainerFilter{PodSandboxId: "nosuch"}) != 0 {
		t.Errorf("list filters are wrong")
	}

	// The shell ignores SIGTERM: killed after the 1s timeout.
	start := time.Now()
	stopCtr(t, k, id, 1)
	if time.Since(start) > 20*time.Second {
		t.Errorf("stop took %s", time.Since(start))
	}
	st = ctrStatus(t, k, id)
	if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.Reason != "Error" || st.FinishedAt == 0 {
		t.Errorf("stopped status = %+v", st)
	}
	stopCtr(t, k, id, 1) // idempotent
	if _, err := k.Runtime.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec in a stopped container: %v", err)
	}
	removeCtr(t, k, id)
	removeCtr(t, k, id)
	stopCtr(t, k, "nosuchcontainer", 1)
	removeCtr(t, k, "nosuchcontainer")
	if _, err := k.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("status of a removed container: %v", err)
	}
	// Removing the pod removes a container still in it.
	p.run(t, ctrConfig("left", images.Busybox, "sleep", "1000"))
	stopAndRemovePod(t, k, p.id)
	if list(nil) != 0 {
		t.Errorf("containers outlived their pod")
	}
	k.CheckNoLeaks(t)
}

// TestRestartsInAOneContainerPod: kubelet restarting the only container of a pod
// without a pause process — the pod's shim exits with the last task, and the next
// start must not fail on it.
func TestRestartsInAOneContainerPod(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "restarts")
	for i := range 8 {
		id := p.run(t, ctrConfig(fmt.Sprintf("attempt-%d", i), images.Busybox, "true"))
		waitExited(t, k, id, 30*time.Second)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// TestStopSignal: the pod's stop_signal (KEP-4960) stops the container and is
// reported; without one the status says SIGTERM.
func TestStopSignal(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "stopsig")
	cfg := ctrConfig("usr1", images.Busybox, "sh", "-c", "trap 'exit 42' USR1; trap '' TERM; echo ready; while :; do sleep 0.1; done")
	cfg.StopSignal = runtimeapi.Signal_SIGNAL_SIGUSR1
	id := p.run(t, cfg)
	waitLog(t, p.logPath(cfg), "stdout:ready")
	if st := ctrStatus(t, k, id); st.StopSignal != runtimeapi.Signal_SIGNAL_SIGUSR1 {
		t.Errorf("status stop_signal %v, want SIGUSR1", st.StopSignal)
	}
	stopCtr(t, k, id, 30)
	if st := ctrStatus(t, k, id); st.ExitCode != 42 {
		t.Errorf("exit code %d after StopContainer: the container did not get SIGUSR1", st.ExitCode)
	}
	plain := p.run(t, ctrConfig("plain", images.Busybox, "sleep", "1000"))
	if st := ctrStatus(t, k, plain); st.StopSignal != runtimeapi.Signal_SIGNAL_SIGTERM {
		t.Errorf("default stop_signal %v, want SIGTERM", st.StopSignal)
	}
	// PodSandboxStatus carries its containers' statuses and a timestamp (evented PLEG).
	ps, err := k.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil || len(ps.ContainersStatuses) != 2 || ps.Timestamp == 0 {
		t.Errorf("PodSandboxStatus: %d container statuses, timestamp %d (%v)", len(ps.GetContainersStatuses()), ps.GetTimestamp(), err)
	}
}

func TestContainerExitCodesAndOOM(t *testing.T) {
	k := containerTestKeelson(t)
	// With a shared PID namespace the shell is not PID 1, so it can kill itself.
	p := newPod(t, k, "exits", func(c *runtimeapi.PodSandboxConfig) { withPause(c) })
	for _, tc := range []struct {
		name   string
		cmd    []string
		code   int32
		reason string
		mem    int64
	}{
		{"zero", []string{"true"}, 0, "Completed", 0},
		{"one", []string{"false"}, 1, "Error", 0},
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 137, "Error", 0},
		{"oom", []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"}, 137, "OOMKilled", 20 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ctrConfig(tc.name, images.Busybox, tc.cmd...)
			if tc.mem > 0 {
				cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: tc.mem, MemorySwapLimitInBytes: tc.mem}
			}
			id := p.run(t, cfg)
			st := waitExited(t, k, id, 30*time.Second)
			if st.ExitCode != tc.code || st.Reason != tc.reason {
				t.Errorf("exit = %d %q, want %d %q", st.ExitCode, st.Reason, tc.code, tc.reason)
			}
			removeCtr(t, k, id)
		})
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// capEff reads the effective capability mask of a process in the container.
func capEff(t *testing.T, k *harness.Keelson, id string) uint64 {
	t.Helper()
	r := execSync(t, k, id, 0, "grep", "CapEff", "/proc/self/status")
	f := strings.Fields(string(r.Stdout))
	if len(f) != 2 {
		t.Fatalf("CapEff line: %q", r.Stdout)
	}
	v, err := strconv.ParseUint(f[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestContainerSecurityContext(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "sec")
	priv := newPod(t, k, "sec-priv", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.Privileged = true
	})
	const netAdmin = 1 << 12
	sleep := []string{"sleep", "1000"}
	run := func(p *pod, name string, mutate func(sc *runtimeapi.LinuxContainerSecurityContext)) string {
		cfg := ctrConfig(name, images.Busybox, sleep...)
		mutate(cfg.Linux.SecurityContext)
		return p.run(t, cfg)
	}
	def := run(p, "default", func(*runtimeapi.LinuxContainerSecurityContext) {})
	add := run(p, "add", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}}
	})
	dropAll := run(p, "dropall", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
	})
	addAll := run(p, "addall", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"ALL"}}
	})
	privileged := run(priv, "privileged", func(sc *runtimeapi.LinuxContainerSecurityContext) { sc.Privileged = true })

	cDef, cAdd, cDrop, cAddAll, cPriv := capEff(t, k, def), capEff(t, k, add), capEff(t, k, dropAll), capEff(t, k, addAll), capEff(t, k, privileged)
	if cDef == 0 || cDef&netAdmin != 0 {
		t.Errorf("default CapEff %x", cDef)
	}
	if cAdd != cDef|netAdmin {
		t.Errorf("add NET_ADMIN: CapEff %x, want %x", cAdd, cDef|netAdmin)
	}
	if cDrop != 0 {
		t.Errorf("drop ALL: CapEff %x", cDrop)
	}
	if cAddAll&netAdmin == 0 || cPriv&netAdmin == 0 || cPriv < cDef {
		t.Errorf("add ALL %x / privileged %x lack capabilities", cAddAll, cPriv)
	}
	// Masked paths: empty in a normal container, real in a privileged one.
	if r := execSync(t, k, def, 0, "cat", "/proc/timer_list"); len(r.Stdout) != 0 {
		t.Errorf("/proc/timer_list is not masked")
	}
	if r := execSync(t, k, privileged, 0, "cat", "/proc/timer_list"); len(r.Stdout) == 0 {
		t.Errorf("/proc/timer_list is masked in a privileged container")
	}
	// A privileged container needs a privileged pod.
	cfg := ctrConfig("privinplain", images.Busybox, sleep...)
	cfg.Linux.SecurityContext.Privileged = true
	if _, err := p.create(t, cfg); status.Code(err) != codes.InvalidArgument {
		t.Errorf("privileged container in a plain pod: %v", err)
	}

	ro := run(p, "readonly", func(sc *runtimeapi.LinuxContainerSecurityContext) { sc.ReadonlyRootfs = true })
	if r := execSync(t, k, ro, 0, "touch", "/x"); r.ExitCode == 0 {
		t.Errorf("wrote to a read-only root filesystem")
	}
	if r := execSync(t, k, def, 0, "touch", "/x"); r.ExitCode != 0 {
		t.Errorf("cannot write to a writable root filesystem: %s", r.Stderr)
	}

	// Users: a name from the image's /etc/passwd; supplemental groups Merge vs Strict.
	merge := run(p, "usermerge", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.RunAsUsername = "keelson"
		sc.SupplementalGroups = []int64{777}
	})
	strict := run(p, "userstrict", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.RunAsUsername = "keelson"
		sc.SupplementalGroups = []int64{777}
		sc.SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
	})
	if r := execSync(t, k, merge, 0, "id", "-u"); strings.TrimSpace(string(r.Stdout)) != "1234" {
		t.Errorf("run as keelson: uid %q", r.Stdout)
	}
	groups := func(id string) string { return strings.TrimSpace(string(execSync(t, k, id, 0, "id", "-G").Stdout)) }
	if g := groups(merge); !strings.Contains(g, "4242") || !strings.Contains(g, "777") || !strings.Contains(g, "5678") {
		t.Errorf("Merge groups = %q, want 5678 (primary), 4242 (from /etc/group) and 777", g)
	}
	if g := groups(strict); strings.Contains(g, "4242") || !strings.Contains(g, "777") {
		t.Errorf("Strict groups = %q, want no 4242, with 777", g)
	}
	st := ctrStatus(t, k, merge)
	if u := st.GetUser().GetLinux(); u.GetUid() != 1234 || u.GetGid() != 5678 {
		t.Errorf("status user = %+v", st.User)
	}
	cfg = ctrConfig("nouser", images.Busybox, sleep...)
	cfg.Linux.SecurityContext.RunAsUsername = "nobody-here"
	if _, err := p.create(t, cfg); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "nobody-here") {
		t.Errorf("unknown user: %v", err)
	}

	// seccomp: the default profile refuses new user namespaces; unconfined allows them.
	sd := run(p, "seccompdefault", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	})
	su := run(p, "seccompunconfined", func(sc *runtimeapi.LinuxContainerSecurityContext) {
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	})
	if r := execSync(t, k, su, 0, "unshare", "-U", "true"); r.ExitCode != 0 {
		t.Fatalf("unshare -U fails even unconfined (%q): cannot test seccomp here", r.Stderr)
	}
	if r := execSync(t, k, sd, 0, "unshare", "-U", "true"); r.ExitCode == 0 {
		t.Errorf("the default seccomp profile allowed unshare -U")
	}
	// AppArmor is not on these hosts: a localhost profile is refused clearly.
	cfg = ctrConfig("apparmor", images.Busybox, sleep...)
	cfg.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "x"}
	if _, err := p.create(t, cfg); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "AppArmor") {
		t.Errorf("apparmor localhost: %v", err)
	}
	stopAndRemovePod(t, k, p.id)
	stopAndRemovePod(t, k, priv.id)
	k.CheckNoLeaks(t)
}

func TestContainerBadInput(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "bad")
	ctx := harness.Ctx(t)
	_, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: "nosuchpod", Config: ctrConfig("x", images.Busybox, "true")})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown sandbox: %v", err)
	}
	for name, tc := range map[string]struct {
		mutate func(c *runtimeapi.ContainerConfig)
		code   codes.Code
		want   string
	}{
		"escaping log path": {func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/x.log" }, codes.InvalidArgument, "log_path"},
		"absolute log path": {func(c *runtimeapi.ContainerConfig) { c.LogPath = "/tmp/x.log" }, codes.InvalidArgument, "log_path"},
		"relative host path": {func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "data"}}
		}, codes.InvalidArgument, "host_path"},
		"missing image": {func(c *runtimeapi.ContainerConfig) { c.Image.Image = "docker.io/library/nosuch:1" }, codes.NotFound, "nosuch"},
		"no name":       {func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }, codes.InvalidArgument, "name"},
	} {
		cfg := ctrConfig("bad", images.Busybox, "true")
		tc.mutate(cfg)
		_, err := p.create(t, cfg)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v mentioning %q", name, err, tc.code, tc.want)
		}
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func TestContainerLogs(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "logs")

	t.Run("long lines and both streams under stress", func(t *testing.T) {
		// 200 lines per stream, every tenth 40 KiB long (split into P parts).
		script := `i=0; while [ $i -lt 200 ]; do
  if [ $((i % 10)) -eq 0 ]; then
    printf 'out%d-' $i; head -c 40960 /dev/zero | tr '\0' o; echo
    printf 'err%d-' $i >&2; head -c 40960 /dev/zero | tr '\0' e >&2; echo >&2
  else
    echo "out$i"; echo "err$i" >&2
  fi
  i=$((i+1))
done`
		cfg := ctrConfig("stress", images.Busybox, "sh", "-c", script)
		id := p.run(t, cfg)
		waitExited(t, k, id, 60*time.Second)
		lines := waitLog(t, p.logPath(cfg), "stdout:out199", "stderr:err199")
		next := map[string]int{"stdout": 0, "stderr": 0}
		for _, l := range lines {
			prefix := map[string]string{"stdout": "out", "stderr": "err"}[l.Stream]
			want := fmt.Sprintf("%s%d", prefix, next[l.Stream])
			if next[l.Stream]%10 == 0 {
				want += "-" + strings.Repeat(prefix[:1], 40960)
			}
			if string(l.Content) != want {
				t.Fatalf("%s line %d: got %d bytes %q..., want %d bytes", l.Stream, next[l.Stream], len(l.Content), trunc(l.Content), len(want))
			}
			next[l.Stream]++
		}
		if next["stdout"] != 200 || next["stderr"] != 200 {
			t.Errorf("lines per stream: %v", next)
		}
		removeCtr(t, k, id)
	})

	t.Run("rotation with ReopenContainerLog loses nothing", func(t *testing.T) {
		cfg := ctrConfig("rotate", images.Busybox, "sh", "-c", `i=0; while [ $i -lt 400 ]; do echo "n$i"; i=$((i+1)); sleep 0.01; done; sleep 1000`)
		id := p.run(t, cfg)
		path := p.logPath(cfg)
		waitLog(t, path, "stdout:n20")
		var rotated []string
		for r := range 3 {
			old := fmt.Sprintf("%s.%d", path, r)
			if err := os.Rename(path, old); err != nil {
				t.Fatal(err)
			}
			rotated = append(rotated, old)
			if _, err := k.Runtime.ReopenContainerLog(harness.Ctx(t), &runtimeapi.ReopenContainerLogRequest{ContainerId: id}); err != nil {
				t.Fatalf("ReopenContainerLog: %v", err)
			}
			time.Sleep(300 * time.Millisecond)
		}
		deadline := time.Now().Add(30 * time.Second)
		var all []crilog.Line
		for {
			var err error
			all, err = crilog.ReadAll(append(rotated, path)...)
			if err == nil && len(all) >= 400 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after rotations only %d lines (%v)", len(all), err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for i, l := range all[:400] {
			if string(l.Content) != fmt.Sprintf("n%d", i) {
				t.Fatalf("line %d = %q: lost or reordered across rotation", i, l.Content)
			}
		}
		stopCtr(t, k, id, 0)
		removeCtr(t, k, id)
	})
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40])
	}
	return string(b)
}

func TestExecSyncTimeoutAndBackgroundOutput(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "exec")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "1000"))

	start := time.Now()
	_, err := k.Runtime.ExecSync(harness.Ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "30"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("timed-out exec: %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("timed-out exec returned after %s", took)
	}
	if r := execSync(t, k, id, 0, "sh", "-c", "ps | grep -c '[s]leep 30'"); strings.TrimSpace(string(r.Stdout)) != "0" {
		t.Errorf("the timed-out process still runs: %q", r.Stdout)
	}

	start = time.Now()
	r := execSync(t, k, id, 10, "sh", "-c", "sleep 100 & echo started")
	if string(r.Stdout) != "started\n" || r.ExitCode != 0 {
		t.Errorf("exec with a background child = %q %d", r.Stdout, r.ExitCode)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("a background process holding stdout held ExecSync for %s", took)
	}
	// Output is capped, not unbounded.
	r = execSync(t, k, id, 30, "sh", "-c", "head -c 20000000 /dev/zero")
	if len(r.Stdout) < 15<<20 || len(r.Stdout) > 16<<20 {
		t.Errorf("exec output = %d bytes, want it capped just under 16 MiB", len(r.Stdout))
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func TestUpdateContainerResources(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "update")
	cfg := ctrConfig("main", images.Busybox, "sleep", "1000")
	cfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuShares: 512}
	id := p.run(t, cfg)
	cg := func(file string) string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", strings.Split(file, ".")[0], k.CgroupParent, id, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if cg("memory.limit_in_bytes") != strconv.Itoa(64<<20) || cg("cpu.shares") != "512" {
		t.Fatalf("initial limits: %s %s", cg("memory.limit_in_bytes"), cg("cpu.shares"))
	}
	newRes := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 96 << 20, CpuShares: 256}
	if _, err := k.Runtime.UpdateContainerResources(harness.Ctx(t), &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: newRes}); err != nil {
		t.Fatal(err)
	}
	if cg("memory.limit_in_bytes") != strconv.Itoa(96<<20) || cg("cpu.shares") != "256" {
		t.Errorf("updated limits: %s %s", cg("memory.limit_in_bytes"), cg("cpu.shares"))
	}
	if r := ctrStatus(t, k, id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 96<<20 || r.GetCpuShares() != 256 {
		t.Errorf("status resources = %+v", r)
	}
	// Persisted: a restart still shows them.
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{Registry: reg})
	if r := ctrStatus(t, k, id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 96<<20 {
		t.Errorf("after restart status resources = %+v", r)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func TestPodNetworkFromContainers(t *testing.T) {
	k := startWithRegistry(t, reg)
	mustPull(t, k, images.EchoServer)
	mustPull(t, k, images.Busybox)
	p := newPod(t, k, "web", func(c *runtimeapi.PodSandboxConfig) {
		c.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 8080, HostPort: 38090}}
	})
	server := p.run(t, ctrConfig("server", images.EchoServer))
	client := p.run(t, ctrConfig("client", images.Busybox, "sleep", "1000"))
	st, _ := podStatus(t, k, p.id)
	ip := st.Network.Ip
	deadline := time.Now().Add(15 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = httpGet("http://" + ip + ":8080/hello"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || !strings.Contains(got, "GET /hello") || !strings.Contains(got, "host=web") {
		t.Errorf("server in the pod via its IP: %q %v", got, err)
	}
	gw := strings.TrimSuffix(k.Subnet, "0/24") + "1"
	if got, err := httpGet("http://" + gw + ":38090/port"); err != nil || !strings.Contains(got, "GET /port") {
		out, _ := exec.Command("sh", "-c", "iptables-save -t nat | grep -E '38090|"+ip+"'; ip route get "+ip+"; ip addr show "+k.Bridge).CombinedOutput()
		t.Errorf("server via the host port: %q %v\n%s", got, err, out)
	}
	// Containers of one pod share its network, hostname and DNS config.
	if r := execSync(t, k, client, 5, "wget", "-qO-", "http://127.0.0.1:8080/local"); !strings.Contains(string(r.Stdout), "GET /local") {
		t.Errorf("localhost across containers of a pod: %q %q", r.Stdout, r.Stderr)
	}
	if r := execSync(t, k, client, 5, "hostname"); strings.TrimSpace(string(r.Stdout)) != "web" {
		t.Errorf("hostname in the container = %q", r.Stdout)
	}
	if r := execSync(t, k, client, 5, "cat", "/etc/resolv.conf"); !strings.Contains(string(r.Stdout), "nameserver 10.96.0.10") || !strings.Contains(string(r.Stdout), "search test.svc.cluster.local") {
		t.Errorf("resolv.conf in the container = %q", r.Stdout)
	}
	_ = server
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func TestContainerExitWhileKeelsonDown(t *testing.T) {
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) { testContainerExitWhileKeelsonDown(t, bin) })
	}
}

func testContainerExitWhileKeelsonDown(t *testing.T, containerdBinary string) {
	k := startWithRegistry(t, reg, func(o *harness.Options) { o.ContainerdBinary = containerdBinary })
	mustPull(t, k, images.Busybox)
	// kill -9 leaves the supervised containerd running (the new keelson adopts it);
	// SIGTERM stops it too, so the exit happens while containerd is down as well.
	for _, how := range []string{"kill -9", "SIGTERM"} {
		p := newPod(t, k, "down-"+strings.ReplaceAll(how, " ", ""))
		cfg := ctrConfig("short", images.Busybox, "sh", "-c", "sleep 2; echo written-while-down; exit 7")
		id := p.run(t, cfg)
		long := p.run(t, ctrConfig("long", images.Busybox, "sleep", "1000"))
		if how == "SIGTERM" {
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
		} else {
			k.Kill()
		}
		time.Sleep(4 * time.Second)
		k.Start(harness.Options{Registry: reg})
		st := ctrStatus(t, k, id)
		if st.State != runtimeapi.ContainerState_CONTAINER_EXITED || st.ExitCode != 7 || st.Reason != "Error" || st.FinishedAt == 0 {
			t.Errorf("%s: exit while keelson was down: %+v", how, st)
		}
		waitLog(t, p.logPath(cfg), "stdout:written-while-down")
		if st := ctrStatus(t, k, long); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Errorf("%s: running container after restart: %+v", how, st)
		}
		if r := execSync(t, k, long, 5, "echo", "back"); string(r.Stdout) != "back\n" {
			t.Errorf("%s: exec after restart: %q", how, r.Stdout)
		}
		stopAndRemovePod(t, k, p.id)
	}
	k.CheckNoLeaks(t)
}

// A container whose stdio keelson holds (stdin or tty) keeps logging after keelson
// restarts: the new keelson opens the FIFOs again.
func TestHeldStdioSurvivesRestart(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "held")
	cfg := ctrConfig("ticker", images.Busybox, "sh", "-c", "i=0; while :; do echo tick$i; i=$((i+1)); sleep 0.1; done")
	cfg.Stdin = true
	id := p.run(t, cfg)
	waitLog(t, p.logPath(cfg), "stdout:tick3")
	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
		} else {
			k.Kill()
		}
		k.Start(harness.Options{Registry: reg})
		lines, _ := crilog.ReadAll(p.logPath(cfg))
		next := fmt.Sprintf("stdout:tick%d", len(lines)+5)
		waitLog(t, p.logPath(cfg), next)
		if st := ctrStatus(t, k, id); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("after %s: %v", how, st.State)
		}
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
