// Package node holds the node tests: keelson installed with `make install` and run by
// systemd on a cgroup v2 host with AppArmor — the node shape this CI machine is not.
// They run inside the guest VM that hack/vm boots (make test-node); elsewhere they skip.
// Everything here is slow by design (the guest runs under TCG): timeouts are generous.
package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/tally"
	"github.com/keelson/keelson/test/wait"
)

const (
	socket     = "/run/keelson/keelson.sock"
	configPath = "/etc/keelson/config.toml"
	busybox    = "docker.io/library/busybox:1.36"
	echoserver = "docker.io/keelson/echoserver:1.0"
	// callTimeout is per CRI call: a container start is 1.5–2 s under TCG, more
	// when both guest CPUs are busy.
	callTimeout = 2 * time.Minute
)

var (
	rt     runtimeapi.RuntimeServiceClient
	img    runtimeapi.ImageServiceClient
	counts = tally.Tally{OnFail: func(t *testing.T) {
		t.Logf("keelson's journal, last lines:\n%s", journal("keelson", 40))
	}}
)

func TestMain(m *testing.M) {
	if _, err := os.Stat("/run/systemd/system"); err != nil || os.Getenv("KEELSON_NODE_VM") == "" {
		fmt.Println("node: not inside the node VM (hack/vm runs these tests): skipped")
		os.Exit(0)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	rt, img = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	code := m.Run()
	counts.Print("node")
	os.Exit(code)
}

// check runs one counted node test step.
func check(t *testing.T, name string, fn func(t *testing.T)) { counts.Run(t, name, fn) }

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return c
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func prop(t testing.TB, unit, name string) string {
	return run(t, "systemctl", "show", "-p", name, "--value", unit)
}

func journal(unit string, n int) string {
	out, _ := exec.Command("journalctl", "-u", unit, "-n", strconv.Itoa(n), "--no-pager", "-o", "cat").CombinedOutput()
	return string(out)
}

// setDriver writes runtime.cgroup_driver into the installed config.
func setDriver(t testing.TB, driver string) {
	t.Helper()
	b, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "cgroup_driver") {
			l = fmt.Sprintf("  cgroup_driver = '%s'", driver)
		}
		out = append(out, l)
	}
	if err := os.WriteFile(configPath, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ready waits until keelson answers Status with both conditions true.
func ready(t testing.TB) {
	t.Helper()
	wait.For(t, "keelson ready", 3*time.Minute, func() error {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := rt.Status(c, &runtimeapi.StatusRequest{})
		if err != nil {
			return err
		}
		for _, cond := range st.GetStatus().GetConditions() {
			if !cond.Status {
				return fmt.Errorf("%s: %s", cond.Type, cond.Message)
			}
		}
		return nil
	})
}

func pull(t testing.TB, ref string) {
	t.Helper()
	if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
}

type pod struct {
	id, uid string
	cfg     *runtimeapi.PodSandboxConfig
}

var podSeq atomic.Int32

// runPod runs a pod under parent (a slice or a path: "" for none), its config
// changed by mods, and removes it when the test ends.
func runPod(t testing.TB, name, parent string, mods ...func(*runtimeapi.PodSandboxConfig)) *pod {
	t.Helper()
	uid := fmt.Sprintf("0000%04d-1111-2222-3333-%012d", podSeq.Add(1), os.Getpid())
	p := &pod{uid: uid, cfg: &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "node", Uid: uid},
		Hostname:     name,
		LogDirectory: filepath.Join("/var/log/pods", "node_"+name+"_"+uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    parent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}},
		},
	}}
	for _, m := range mods {
		m(p.cfg)
	}
	resp, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: p.cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	p.id = resp.PodSandboxId
	t.Cleanup(func() { removePod(t, p.id) })
	return p
}

func removePod(t testing.TB, id string) {
	c, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := rt.StopPodSandbox(c, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); status.Code(err) == codes.NotFound {
		return // removed already
	} else if err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if _, err := rt.RemovePodSandbox(c, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
}

// start creates and starts a container in p.
func (p *pod) start(t testing.TB, name, image string, cmd []string, mod ...func(*runtimeapi.ContainerConfig)) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: image},
		Command:  cmd,
		LogPath:  name + ".log",
		Linux:    &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{}, SecurityContext: &runtimeapi.LinuxContainerSecurityContext{}},
	}
	for _, m := range mod {
		m(cfg)
	}
	resp, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return resp.ContainerId
}

func containerStatus(t testing.TB, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	resp, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	return resp.Status
}

// pid is the container's init process on this host (from the verbose status).
func pid(t testing.TB, id string) int {
	t.Helper()
	resp, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("no pid in the verbose status (%v): %s", err, resp.Info["info"])
	}
	n := info.Pid
	return n
}

func execSync(t testing.TB, id string, cmd ...string) string {
	t.Helper()
	resp, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 60})
	if err != nil || resp.ExitCode != 0 {
		t.Fatalf("exec %v: %v (exit %d, stderr %q)", cmd, err, resp.GetExitCode(), resp.GetStderr())
	}
	return strings.TrimSpace(string(resp.Stdout))
}

// cgroupOf is a process's cgroup v2 path.
func cgroupOf(t testing.TB, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "0::")
}

func TestNode(t *testing.T) {
	check(t, "make install put keelson in place; systemctl starts it (Type=notify) on cgroup v2", func(t *testing.T) {
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			t.Fatalf("not a cgroup v2 host: %v", err)
		}
		for _, f := range []string{"/usr/local/bin/keelson", "/usr/local/bin/keelson-logger", "/etc/systemd/system/keelson.service", configPath, "/etc/keelson/cni/net.d/10-keelson.conflist"} {
			if _, err := os.Stat(f); err != nil {
				t.Fatalf("make install: %v", err)
			}
		}
		run(t, "systemctl", "daemon-reload")
		run(t, "systemctl", "enable", "--now", "keelson")
		// With Type=notify, systemctl returns once keelson said READY=1.
		if s := prop(t, "keelson", "ActiveState"); s != "active" {
			t.Fatalf("keelson is %s", s)
		}
		if s := prop(t, "keelson", "StatusText"); !strings.Contains(s, "serving CRI") {
			t.Fatalf("StatusText %q", s)
		}
		if s := prop(t, "keelson", "WatchdogUSec"); s == "0" || s == "infinity" {
			t.Fatalf("no watchdog: WatchdogUSec=%s", s)
		}
		ready(t)
		rc, err := rt.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
		if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_SYSTEMD {
			t.Fatalf("RuntimeConfig: %v %v (want SYSTEMD: auto picks it on a systemd cgroup v2 host)", rc, err)
		}
		// The supervised containerd stays in keelson's service cgroup, apart from pods.
		mainPid, _ := strconv.Atoi(prop(t, "keelson", "MainPID"))
		if cg := cgroupOf(t, mainPid); cg != "/system.slice/keelson.service" {
			t.Fatalf("keelson runs in %s", cg)
		}
		pull(t, busybox)
		pull(t, echoserver)
	})

	check(t, "systemd driver: a pod in kubelet's slice, its containers in scopes; exec, logs, ports, stats, update, removal", func(t *testing.T) {
		slice := "kubepods-besteffort-podabcd_1234.slice"
		ids := lifecycle(t, slice, func(id string) string {
			return "/kubepods.slice/kubepods-besteffort.slice/" + slice + "/keelson-" + id + ".scope"
		})
		for _, id := range ids {
			if s := prop(t, "keelson-"+id+".scope", "ActiveState"); s == "active" {
				t.Fatalf("scope of %s still active after the pod's removal", id)
			}
		}
	})

	check(t, "a memory limit on cgroup v2 OOM-kills the container: OOMKilled, exit 137", func(t *testing.T) {
		p := runPod(t, "oom", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podoom.slice") // as kubelet sends it
		id := p.start(t, "hog", busybox, []string{"tail", "/dev/zero"}, func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.MemoryLimitInBytes = 32 << 20
		})
		wait.For(t, "the hog exits", 3*time.Minute, func() error {
			if s := containerStatus(t, id); s.State != runtimeapi.ContainerState_CONTAINER_EXITED {
				return fmt.Errorf("state %v", s.State)
			}
			return nil
		})
		if s := containerStatus(t, id); s.Reason != "OOMKilled" || s.ExitCode != 137 {
			events, _ := os.ReadFile("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podoom.slice/memory.events")
			t.Fatalf("reason %q exit %d, want OOMKilled 137 (the pod slice's memory.events:\n%s)", s.Reason, s.ExitCode, events)
		}
	})

	check(t, "AppArmor: a container without a profile runs under keelson's default one", func(t *testing.T) {
		if b, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled"); !strings.HasPrefix(string(b), "Y") {
			t.Fatalf("AppArmor is not enabled in the guest kernel (%q)", b)
		}
		p := runPod(t, "aa", "kubepods-besteffort-podaa.slice")
		id := p.start(t, "c", busybox, []string{"sleep", "100000"})
		if got := execSync(t, id, "cat", "/proc/self/attr/current"); got != "keelson-default (enforce)" {
			t.Fatalf("/proc/self/attr/current = %q", got)
		}
		unconfined := p.start(t, "u", busybox, []string{"sleep", "100000"}, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
		})
		if got := execSync(t, unconfined, "cat", "/proc/self/attr/current"); got != "unconfined" {
			t.Fatalf("unconfined container: /proc/self/attr/current = %q", got)
		}
		// A Localhost profile the node loaded is applied, and enforced.
		if err := os.WriteFile("/etc/apparmor.d/keelson-node-test", []byte(testProfile), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "apparmor_parser", "-r", "/etc/apparmor.d/keelson-node-test")
		local := p.start(t, "l", busybox, []string{"sleep", "100000"}, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "keelson-node-test"}
		})
		if got := execSync(t, local, "cat", "/proc/self/attr/current"); got != "keelson-node-test (enforce)" {
			t.Fatalf("localhost profile: /proc/self/attr/current = %q", got)
		}
		resp, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: local, Cmd: []string{"sh", "-c", "echo x > /tmp/denied"}, Timeout: 60})
		if err != nil || resp.ExitCode == 0 {
			t.Fatalf("a write the profile denies: %v, exit %d", err, resp.GetExitCode())
		}
		// One that is not loaded is refused at creation, naming it.
		_, err = rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, SandboxConfig: p.cfg, Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "missing"}, Image: &runtimeapi.ImageSpec{Image: busybox}, Command: []string{"true"},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "no-such-profile"},
			}},
		}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no-such-profile") {
			t.Fatalf("a profile that is not loaded: %v", err)
		}
		st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{Verbose: true})
		if err != nil || st.Info["appArmor"] != "true" {
			t.Fatalf("Status does not report AppArmor: %v %v", st.GetInfo()["appArmor"], err)
		}
	})

	check(t, "a pod with its own user namespace (hostUsers: false) in kubelet's slice: root inside is host uid 165536", func(t *testing.T) {
		userns := &runtimeapi.UserNamespace{
			Mode: runtimeapi.NamespaceMode_POD,
			Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 165536, Length: 65536}},
			Gids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 165536, Length: 65536}},
		}
		ns := &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER, UsernsOptions: userns} // as kubelet sends it
		p := runPod(t, "userns", "kubepods-besteffort-poduserns.slice", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions = ns
		})
		id := p.start(t, "c", busybox, []string{"sleep", "100000"}, func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions = ns
		})
		if got := strings.Join(strings.Fields(execSync(t, id, "cat", "/proc/self/uid_map")), " "); got != "0 165536 65536" {
			t.Fatalf("uid_map %q", got)
		}
		if got := execSync(t, id, "sh", "-c", "touch /new && stat -c '%u' /bin/busybox /etc/hostname /dev/shm && ls /sys/class/net"); !strings.HasPrefix(got, "0\n0\n0\n") {
			t.Fatalf("inside the pod: %q", got)
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid(t, id)))
		if !strings.Contains(string(b), "Uid:\t165536\t") {
			t.Fatalf("the container's process as the node sees it:\n%s", b)
		}
		if cg := cgroupOf(t, pid(t, id)); cg != "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-poduserns.slice/keelson-"+id+".scope" {
			t.Fatalf("container cgroup %s", cg)
		}
	})

	check(t, "systemctl restart and kill -9 of keelson: containers keep running, state intact", func(t *testing.T) {
		p := runPod(t, "survivor", "kubepods-besteffort-podsurvivor.slice")
		id := p.start(t, "c", busybox, []string{"sleep", "100000"})
		before := containerStatus(t, id)
		cpid := pid(t, id)

		run(t, "systemctl", "restart", "keelson")
		ready(t)
		after := containerStatus(t, id)
		if after.State != runtimeapi.ContainerState_CONTAINER_RUNNING || after.StartedAt != before.StartedAt || syscall.Kill(cpid, 0) != nil {
			t.Fatalf("after systemctl restart: %v started %d (was %d), pid %d alive: %v", after.State, after.StartedAt, before.StartedAt, cpid, syscall.Kill(cpid, 0) == nil)
		}

		restarts := prop(t, "keelson", "NRestarts")
		mainPid, _ := strconv.Atoi(prop(t, "keelson", "MainPID"))
		if err := syscall.Kill(mainPid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wait.For(t, "systemd restarts keelson", 3*time.Minute, func() error {
			if n := prop(t, "keelson", "NRestarts"); n == restarts || prop(t, "keelson", "ActiveState") != "active" {
				return fmt.Errorf("NRestarts %s, %s", n, prop(t, "keelson", "ActiveState"))
			}
			return nil
		})
		ready(t)
		if s := containerStatus(t, id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING || syscall.Kill(cpid, 0) != nil {
			t.Fatalf("after kill -9: %v", s.State)
		}
		if got := execSync(t, id, "echo", "still-here"); got != "still-here" {
			t.Fatalf("exec after kill -9: %q", got)
		}
	})

	check(t, "CheckpointContainer with CRIU, and a restore in another pod: the process goes on with its memory and files", func(t *testing.T) {
		// A shell whose state is in its memory: a stamp taken once, and a count.
		const counter = `stamp=$RANDOM$RANDOM$RANDOM; i=0; while :; do i=$((i+1)); echo $stamp > /tmp/stamp; echo $i > /tmp/count; sleep 0.2; done`
		// Kubelet's default pods (no shared PID namespace): the restored processes get
		// a PID namespace of their own, so their PIDs are free. (In a pod whose PID
		// namespace is shared, CRIU needs the same PIDs free there too.)
		ownPID := func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_CONTAINER
		}
		p := runPod(t, "ckpt", "kubepods-besteffort-podckpt.slice", ownPID)
		id := p.start(t, "counter", busybox, []string{"sh", "-c", counter})
		wait.For(t, "the counter counts", 2*time.Minute, func() error {
			if n, _ := strconv.Atoi(execSync(t, id, "cat", "/tmp/count")); n < 3 {
				return fmt.Errorf("count %d", n)
			}
			return nil
		})
		execSync(t, id, "sh", "-c", "echo kept > /data.txt")
		stamp := execSync(t, id, "cat", "/tmp/stamp")
		if err := os.MkdirAll("/var/lib/kubelet/checkpoints", 0o700); err != nil {
			t.Fatal(err)
		}
		archive := "/var/lib/kubelet/checkpoints/checkpoint-ckpt_node-counter.tar"
		c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := rt.CheckpointContainer(c, &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: archive}); err != nil {
			t.Fatalf("CheckpointContainer: %v\n%s", err, journal("keelson", 30))
		}
		defer os.Remove(archive)
		if s := containerStatus(t, id); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("after its checkpoint the container is %v", s.State)
		}
		n0, _ := strconv.Atoi(execSync(t, id, "cat", "/tmp/count"))

		p2 := runPod(t, "restored", "kubepods-besteffort-podrestored.slice", ownPID)
		t.Cleanup(func() {
			if t.Failed() { // CRIU's own account of a failed restore
				logs, _ := filepath.Glob("/var/lib/keelson/containers/*/checkpoint/work/restore.log")
				for _, l := range logs {
					b, _ := os.ReadFile(l)
					lines := strings.Split(string(b), "\n")
					t.Logf("%s, last lines:\n%s", l, strings.Join(lines[max(0, len(lines)-40):], "\n"))
				}
			}
		})
		rid := p2.start(t, "counter", archive, nil)
		if got := execSync(t, rid, "cat", "/tmp/stamp"); got != stamp {
			t.Fatalf("the restored process has stamp %q, want %q (started afresh?)", got, stamp)
		}
		wait.For(t, "the restored counter counts on", 2*time.Minute, func() error {
			if n, _ := strconv.Atoi(execSync(t, rid, "cat", "/tmp/count")); n <= n0 {
				return fmt.Errorf("count %d, was %d at the checkpoint", n, n0)
			}
			return nil
		})
		if got := execSync(t, rid, "cat", "/data.txt"); got != "kept" {
			t.Fatalf("/data.txt in the restored container: %q", got)
		}
		if cg := cgroupOf(t, pid(t, rid)); cg != "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podrestored.slice/keelson-"+rid+".scope" {
			t.Fatalf("restored container's cgroup %s", cg)
		}
	})

	check(t, "a second runtime handler: a pod under crun beside one under runc", func(t *testing.T) {
		b, err := os.ReadFile(configPath)
		if err != nil {
			t.Fatal(err)
		}
		// Debian 12's crun (1.8.1) knows runtime-spec versions up to 1.1.
		crunCfg := string(b) + "\n[runtime.handlers.crun]\n  binary_name = '/usr/bin/crun'\n  oci_version = '1.1.0'\n"
		if err := os.WriteFile(configPath, []byte(crunCfg), 0o644); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.WriteFile(configPath, b, 0o644); err != nil {
				t.Error(err)
			}
			run(t, "systemctl", "restart", "keelson")
			ready(t)
		}()
		run(t, "systemctl", "restart", "keelson")
		ready(t)
		st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		handlers := map[string]bool{}
		for _, h := range st.GetRuntimeHandlers() {
			handlers[h.GetName()] = true
		}
		if !handlers["crun"] || !handlers["runc"] {
			t.Fatalf("Status runtime handlers %v, want crun and runc", st.GetRuntimeHandlers())
		}
		for handler, binary := range map[string]string{"crun": "/usr/bin/crun", "runc": "/opt/keelson/bin/runc"} {
			p := runPod(t, "by-"+handler, "kubepods-besteffort-podby"+handler+".slice", func(c *runtimeapi.PodSandboxConfig) {})
			if handler == "crun" {
				// runPod made it with the default handler; make one under crun.
				removePod(t, p.id)
				resp, err := rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: p.cfg, RuntimeHandler: "crun"})
				if err != nil {
					t.Fatalf("RunPodSandbox under crun: %v", err)
				}
				p.id = resp.PodSandboxId
				t.Cleanup(func() { removePod(t, p.id) })
			}
			id := p.start(t, "c", busybox, []string{"sleep", "100000"})
			if got := execSync(t, id, "echo", handler); got != handler {
				t.Fatalf("exec in the %s container: %q", handler, got)
			}
			// The shim ran this handler's binary: its state root holds the container.
			// (The shim puts it under a directory per containerd namespace.)
			roots, _ := filepath.Glob("/run/keelson/runtime/" + handler + "/*")
			var out string
			for _, root := range roots {
				out += run(t, binary, "--root", root, "list")
			}
			if !strings.Contains(out, id) {
				t.Fatalf("%s list (roots %v) does not show container %s:\n%s", binary, roots, id, out)
			}
			removePod(t, p.id)
		}
	})

	check(t, "cgroupfs driver on cgroup v2: slice parents refused; exec, logs, ports, stats, update, removal under /sys/fs/cgroup", func(t *testing.T) {
		setDriver(t, "cgroupfs")
		t.Cleanup(func() {
			setDriver(t, "auto")
			run(t, "systemctl", "restart", "keelson")
			ready(t)
		})
		run(t, "systemctl", "restart", "keelson")
		ready(t)
		rc, err := rt.RuntimeConfig(ctx(t), &runtimeapi.RuntimeConfigRequest{})
		if err != nil || rc.GetLinux().GetCgroupDriver() != runtimeapi.CgroupDriver_CGROUPFS {
			t.Fatalf("RuntimeConfig: %v %v", rc, err)
		}
		_, err = rt.RunPodSandbox(ctx(t), &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "bad", Namespace: "node", Uid: "bad"},
			Linux:    &runtimeapi.LinuxPodSandboxConfig{CgroupParent: "kubepods-besteffort-podbad.slice"},
		}})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("a slice parent under cgroupfs: %v, want InvalidArgument", err)
		}
		lifecycle(t, "/kubepods/besteffort/podfs", func(id string) string { return "/kubepods/besteffort/podfs/" + id })
	})

	check(t, "socket activation: with keelson.socket, the first CRI call starts a stopped keelson", func(t *testing.T) {
		t.Cleanup(func() {
			run(t, "systemctl", "stop", "keelson.socket")
			run(t, "systemctl", "start", "keelson")
			ready(t)
		})
		run(t, "systemctl", "stop", "keelson")
		run(t, "systemctl", "start", "keelson.socket")
		if s := prop(t, "keelson", "ActiveState"); s != "inactive" {
			t.Fatalf("keelson is %s before any call", s)
		}
		ready(t) // connects: systemd starts keelson and hands it the socket
		if s := prop(t, "keelson", "ActiveState"); s != "active" {
			t.Fatalf("keelson is %s after a call on its socket", s)
		}
		if j := journal("keelson", 200); !strings.Contains(j, "socket activation") {
			t.Fatalf("keelson did not serve the socket systemd passed:\n%s", j)
		}
	})

	check(t, "keelson doctor finds nothing left over (scopes, cgroups, netns, CNI)", func(t *testing.T) {
		out, err := exec.Command("/usr/local/bin/keelson", "doctor").CombinedOutput()
		if err != nil {
			t.Fatalf("keelson doctor: %v\n%s", err, out)
		}
	})

	check(t, "kubelet v1.36 with cgroupDriver systemd (failCgroupV1 default): a static pod with probes runs; /stats/summary has it", func(t *testing.T) {
		kubelet(t)
	})

	// Last: it takes the make install copy and the host's /opt/keelson away.
	check(t, "the Debian package installs, serves CRI under systemd and purges without a trace", func(t *testing.T) {
		debPackage(t)
	})
}

// debPackage replaces the make install copy with bin/keelson_*.deb (a fresh machine:
// nothing of keelson's left, /opt/keelson not the host's), starts it, and purges it.
func debPackage(t *testing.T) {
	debs, _ := filepath.Glob("/keelson/bin/keelson_*.deb")
	if len(debs) != 1 {
		t.Fatalf("want one package in bin/ (make test-node builds it), found %v", debs)
	}
	run(t, "systemctl", "disable", "--now", "keelson.socket", "keelson")
	run(t, "rm", "-rf", "/usr/local/bin/keelson", "/usr/local/bin/keelson-logger", "/etc/systemd/system/keelson.service",
		"/etc/systemd/system/keelson.socket", "/etc/keelson", "/var/lib/keelson", "/run/keelson")
	run(t, "systemctl", "daemon-reload")
	run(t, "umount", "-l", "/opt/keelson") // the host's, read-only
	out := run(t, "dpkg", "-i", debs[0])
	t.Logf("dpkg -i: %s", out)
	if s := run(t, "systemctl", "is-enabled", "keelson"); s != "enabled" {
		t.Fatalf("keelson.service is %s after the install", s)
	}
	run(t, "systemctl", "start", "keelson")
	ready(t)
	if v := run(t, "/opt/keelson/bin/crictl", "--runtime-endpoint", "unix://"+socket, "version"); !strings.Contains(v, "keelson") {
		t.Fatalf("crictl version: %s", v)
	}
	run(t, "dpkg", "--purge", "keelson")
	for _, p := range []string{"/usr/bin/keelson", "/usr/bin/keelson-logger", "/lib/systemd/system/keelson.service",
		"/lib/systemd/system/keelson.socket", "/etc/keelson", "/var/lib/keelson", "/run/keelson", "/opt/keelson/bin", "/opt/keelson/cni"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is left after the purge", p)
		}
	}
	if out, err := exec.Command("pgrep", "-a", "keelson|containerd").CombinedOutput(); err == nil {
		t.Errorf("processes left after the purge:\n%s", out)
	}
	if s, _ := exec.Command("systemctl", "is-active", "keelson").Output(); strings.TrimSpace(string(s)) == "active" {
		t.Error("keelson.service is active after the purge")
	}
}

// lifecycle runs a pod under parent with an echo server on hostPort 30080 and a
// logging busybox, checks exec, logs, the port, stats (PSI included), a resource
// update, a pod resize and that removal leaves no cgroup; cgroup(id) is where a container's cgroup
// must be. It returns the containers' IDs.
func lifecycle(t *testing.T, parent string, cgroup func(id string) string) []string {
	p := runPod(t, "web", parent, func(c *runtimeapi.PodSandboxConfig) {
		c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 8080, HostPort: 30080}}
	})
	web := p.start(t, "web", echoserver, nil)
	logger := p.start(t, "logger", busybox, []string{"sh", "-c", "echo hello-from-node; exec sleep 100000"})

	want := cgroup(logger)
	if cg := cgroupOf(t, pid(t, logger)); cg != want {
		t.Fatalf("container cgroup %s, want %s", cg, want)
	}
	if got := execSync(t, logger, "cat", "/proc/self/cgroup"); got != "0::/" {
		t.Fatalf("inside the container /proc/self/cgroup is %q (want a cgroup namespace)", got)
	}
	wait.For(t, "log line", time.Minute, func() error {
		b, _ := os.ReadFile(filepath.Join(p.cfg.LogDirectory, "logger.log"))
		if !strings.Contains(string(b), "stdout F hello-from-node") {
			return fmt.Errorf("log: %q", b)
		}
		return nil
	})
	// The port mapping, through the node's address.
	wait.For(t, "hostPort 30080", time.Minute, func() error {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://10.0.2.15:30080/node")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "/node") {
			return fmt.Errorf("answer %q", b)
		}
		return nil
	})
	wait.For(t, "container stats", time.Minute, func() error {
		st, err := rt.ContainerStats(ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: web})
		if err != nil {
			return err
		}
		if st.GetStats().GetMemory().GetWorkingSetBytes().GetValue() == 0 || st.GetStats().GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 {
			return fmt.Errorf("stats %v", st.GetStats())
		}
		// Pressure stall information from the container's cgroup (the guest boots with psi=1).
		if st.GetStats().GetCpu().GetPsi() == nil || st.GetStats().GetMemory().GetPsi() == nil || st.GetStats().GetIo().GetPsi() == nil {
			return fmt.Errorf("no PSI in %v", st.GetStats())
		}
		return nil
	})
	if _, err := rt.UpdateContainerResources(ctx(t), &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: logger, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, CpuPeriod: 100000, CpuQuota: 50000},
	}); err != nil {
		t.Fatalf("UpdateContainerResources: %v", err)
	}
	dir := "/sys/fs/cgroup" + want
	if b, _ := os.ReadFile(dir + "/memory.max"); strings.TrimSpace(string(b)) != strconv.Itoa(64<<20) {
		t.Fatalf("memory.max %q after the update", b)
	}
	if b, _ := os.ReadFile(dir + "/cpu.max"); strings.TrimSpace(string(b)) != "50000 100000" {
		t.Fatalf("cpu.max %q after the update", b)
	}
	// An in-place pod resize reaches the pod's cgroup (the containers' parent).
	if _, err := rt.UpdatePodSandboxResources(ctx(t), &runtimeapi.UpdatePodSandboxResourcesRequest{
		PodSandboxId: p.id, Resources: &runtimeapi.LinuxContainerResources{CpuShares: 1024, CpuPeriod: 100000, CpuQuota: 200000, MemoryLimitInBytes: 256 << 20},
	}); err != nil {
		t.Fatalf("UpdatePodSandboxResources: %v", err)
	}
	podDir := filepath.Dir(dir)
	for file, value := range map[string]string{"cpu.max": "200000 100000", "memory.max": strconv.Itoa(256 << 20), "cpu.weight": "39"} {
		if b, _ := os.ReadFile(filepath.Join(podDir, file)); strings.TrimSpace(string(b)) != value {
			t.Fatalf("pod cgroup %s: %s = %q after the resize, want %s", podDir, file, b, value)
		}
	}
	removePod(t, p.id)
	for _, id := range []string{web, logger} {
		if _, err := os.Stat("/sys/fs/cgroup" + cgroup(id)); err == nil {
			t.Fatalf("the cgroup of %s is left after the pod's removal", id)
		}
	}
	return []string{web, logger}
}

// testProfile allows everything but writing /tmp/denied.
const testProfile = `profile keelson-node-test flags=(attach_disconnected,mediate_deleted) {
  file,
  network,
  capability,
  signal,
  ptrace,
  mount,
  umount,
  unix,
  pivot_root,
  deny /tmp/denied w,
}
`

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix:///run/keelson/keelson.sock
imageServiceEndpoint: unix:///run/keelson/keelson.sock
cgroupDriver: systemd
staticPodPath: /etc/kubernetes/manifests
fileCheckFrequency: 2s
syncFrequency: 10s
address: 127.0.0.1
readOnlyPort: 10255
healthzBindAddress: 127.0.0.1
healthzPort: 10248
failSwapOn: false
resolvConf: ""
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
`

const staticPod = `apiVersion: v1
kind: Pod
metadata:
  name: probed
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: docker.io/keelson/echoserver:1.0
    readinessProbe:
      httpGet: {path: /ready, port: 8080}
      periodSeconds: 2
    livenessProbe:
      tcpSocket: {port: 9000}
      periodSeconds: 5
      failureThreshold: 10
  - name: sidecar
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 100000"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ok"]}
      periodSeconds: 3
`

func kubelet(t *testing.T) {
	const bin = "/opt/keelson/k8s/bin/kubelet"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubelet: %v (make k8s builds it)", err)
	}
	for _, d := range []string{"/etc/kubernetes/manifests", "/var/lib/kubelet"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("/var/lib/kubelet/config.yaml", []byte(kubeletConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "systemd-run", "--unit", "kubelet", "--collect", bin, "--config", "/var/lib/kubelet/config.yaml", "--hostname-override", "node", "--v", "2")
	t.Cleanup(func() {
		_ = os.Remove("/etc/kubernetes/manifests/probed.yaml")
		wait.For(t, "the static pod gone from CRI", 3*time.Minute, func() error {
			c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ps, err := rt.ListPodSandbox(c, &runtimeapi.ListPodSandboxRequest{})
			if err != nil || len(ps.Items) != 0 {
				return fmt.Errorf("%d sandboxes (%v)", len(ps.GetItems()), err)
			}
			return nil
		})
		_ = exec.Command("systemctl", "stop", "kubelet").Run()
		if t.Failed() {
			t.Logf("kubelet's journal, last lines:\n%s", journal("kubelet", 60))
		}
	})
	get := func(path string) ([]byte, error) {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://127.0.0.1:10255" + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", path, resp.Status)
		}
		return io.ReadAll(resp.Body)
	}
	wait.For(t, "kubelet serving", 5*time.Minute, func() error { _, err := get("/pods"); return err })
	if err := os.WriteFile("/etc/kubernetes/manifests/probed.yaml", []byte(staticPod), 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "static pod running and ready", 8*time.Minute, func() error {
		b, err := get("/pods")
		if err != nil {
			return err
		}
		var pl struct {
			Items []struct {
				Status struct {
					Phase             string
					ContainerStatuses []struct{ Ready bool }
				}
			}
		}
		if err := json.Unmarshal(b, &pl); err != nil {
			return err
		}
		if len(pl.Items) != 1 || pl.Items[0].Status.Phase != "Running" {
			return fmt.Errorf("pods: %.600s", b)
		}
		for _, c := range pl.Items[0].Status.ContainerStatuses {
			if !c.Ready {
				return fmt.Errorf("not all ready: %.600s", b)
			}
		}
		if len(pl.Items[0].Status.ContainerStatuses) != 2 {
			return fmt.Errorf("pods: %.600s", b)
		}
		return nil
	})
	// kubelet made the pod's slice under kubepods.slice; keelson put the container's scope in it.
	ps, err := rt.ListContainers(ctx(t), &runtimeapi.ListContainersRequest{})
	if err != nil || len(ps.Containers) != 2 {
		t.Fatalf("CRI containers: %v %v", ps, err)
	}
	if cg := cgroupOf(t, pid(t, ps.Containers[0].Id)); !strings.HasPrefix(cg, "/kubepods.slice/") || !strings.HasSuffix(cg, "/keelson-"+ps.Containers[0].Id+".scope") {
		t.Fatalf("container cgroup %s", cg)
	}
	wait.For(t, "/stats/summary with the pod's CPU and memory", 5*time.Minute, func() error {
		b, err := get("/stats/summary")
		if err != nil {
			return err
		}
		var sum struct {
			Pods []struct {
				PodRef struct{ Name string }
				CPU    *struct{ UsageNanoCores *uint64 }
				Memory *struct{ WorkingSetBytes *uint64 }
			}
		}
		if err := json.Unmarshal(b, &sum); err != nil {
			return err
		}
		for _, p := range sum.Pods {
			if p.PodRef.Name == "probed-node" && p.CPU != nil && p.CPU.UsageNanoCores != nil && p.Memory != nil && p.Memory.WorkingSetBytes != nil && *p.Memory.WorkingSetBytes > 0 {
				return nil
			}
		}
		return fmt.Errorf("summary: %.600s", b)
	})
}
