package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// podUserNS is what kubelet sends for hostUsers: false: the pod's root is host
// uid/gid 200000, 65536 IDs.
var podUserNS = &runtimeapi.UserNamespace{
	Mode: runtimeapi.NamespaceMode_POD,
	Uids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}},
	Gids: []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 200000, Length: 65536}},
}

func runtimeHandlerSupportsUserNS(t *testing.T, k *harness.Keelson) bool {
	st, err := k.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == "" {
			return h.GetFeatures().GetUserNamespaces()
		}
	}
	return false
}

// TestUserNamespaces: pods with their own user namespace (hostUsers: false), with
// and without a pause process: root inside is host uid 200000; image files, the
// pod's files, /dev/shm and an id-mapped volume are root's inside; host root's
// files stay out of reach. With Debian's containerd 1.6 (no id-mapped snapshots) the
// feature is not advertised and such pods are refused, naming the reason.
func TestUserNamespaces(t *testing.T) {
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) {
			k := startWithRegistry(t, reg, func(o *harness.Options) { o.ContainerdBinary = bin })
			mustPull(t, k, images.Busybox)
			if name == "debian" {
				if runtimeHandlerSupportsUserNS(t, k) {
					t.Fatal("user namespaces advertised with containerd 1.6")
				}
				cfg := podConfig(k, "userns-refused")
				cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserNS
				_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
				if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "user namespace") {
					t.Fatalf("RunPodSandbox with a pod user namespace on containerd 1.6: %v", err)
				}
				k.CheckNoLeaks(t)
				return
			}
			if !runtimeHandlerSupportsUserNS(t, k) {
				t.Fatal("user namespaces not advertised with containerd 2 on this kernel")
			}
			for _, shape := range []struct {
				name string
				pid  runtimeapi.NamespaceMode
			}{{"no pause process", runtimeapi.NamespaceMode_CONTAINER}, {"pause process", runtimeapi.NamespaceMode_POD}} {
				t.Run(shape.name, func(t *testing.T) { userNSPod(t, k, shape.pid) })
			}
			k.CheckNoLeaks(t)
		})
	}
}

func userNSPod(t *testing.T, k *harness.Keelson, pid runtimeapi.NamespaceMode) {
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "data"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newPod(t, k, "userns", func(c *runtimeapi.PodSandboxConfig) {
		c.Linux.SecurityContext.NamespaceOptions.Pid = pid
		c.Linux.SecurityContext.NamespaceOptions.UsernsOptions = podUserNS
		c.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "80", "kernel.shm_rmid_forced": "1"}
	})
	cfg := ctrConfig("c", images.Busybox, "sleep", "100000")
	cfg.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: pid, UsernsOptions: podUserNS}
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", HostPath: vol, UidMappings: podUserNS.Uids, GidMappings: podUserNS.Gids}}
	id := p.run(t, cfg)

	sh := func(script string) string {
		t.Helper()
		r := execSync(t, k, id, 30, "sh", "-c", script)
		if r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s%s", script, r.ExitCode, r.Stdout, r.Stderr)
		}
		return strings.TrimSpace(string(r.Stdout))
	}
	if got := strings.Fields(sh("cat /proc/self/uid_map")); strings.Join(got, " ") != "0 200000 65536" {
		t.Errorf("uid_map %q", got)
	}
	if got := strings.Fields(sh("cat /proc/self/gid_map")); strings.Join(got, " ") != "0 200000 65536" {
		t.Errorf("gid_map %q", got)
	}
	// Root inside owns the image's files (id-mapped layers), the pod's files and
	// /dev/shm, and the volume's files; it can write to each.
	want := "0 0\n0 0\n0 0\n0 0\n0 0"
	if got := sh("stat -c '%u %g' /bin/busybox /etc/hosts /etc/resolv.conf /dev/shm /vol/data"); got != want {
		t.Errorf("owners inside:\n%s\nwant\n%s", got, want)
	}
	sh("touch /new-in-rootfs && echo 10.0.0.9 extra >> /etc/hosts && touch /dev/shm/x && echo more >> /vol/data && mkdir /vol/dir")
	if got := sh("hostname"); got != "userns" {
		t.Errorf("hostname %q", got)
	}
	if got := sh("cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced"); got != "80\n1" {
		t.Errorf("sysctls %q", got)
	}
	// sysfs and /proc are the pod's own (its network namespace belongs to its user
	// namespace), and the node's root-only files stay closed.
	sh("ls /sys/class/net/eth0 >/dev/null")
	if r := execSync(t, k, id, 30, "sh", "-c", "cat /proc/1/root/etc/shadow || echo x > /proc/sys/kernel/hostname"); r.ExitCode == 0 {
		t.Errorf("the pod's root reached what the node's root owns: %s", r.Stdout)
	}
	// Seen from the node: the container's processes run as 200000, and what it wrote
	// in the volume is the node's root's (the mount maps it back).
	if st, err := os.Stat(filepath.Join(vol, "dir")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("a directory made in the volume: %v %+v", err, st)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", ctrPid(t, k, id)))
	if err != nil || !strings.Contains(string(b), "Uid:\t200000\t200000\t200000\t200000") {
		t.Errorf("the container's init as the node sees it:\n%s", b)
	}

	// A container asking for other mappings, or the node's user namespace, is refused.
	bad := ctrConfig("bad", images.Busybox, "true")
	bad.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{Pid: pid, UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}}
	if _, err := p.create(t, bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a NODE user namespace in a POD one: %v", err)
	}
	stopAndRemovePod(t, k, p.id)
}
