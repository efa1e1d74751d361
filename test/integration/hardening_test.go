package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

// wantInvalid checks that err is InvalidArgument and names field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), field) {
		t.Errorf("%s: %v; want InvalidArgument naming %s", what, err, field)
	}
}

// Requests a pod author or a broken client can send are refused before anything is
// created: InvalidArgument naming the field, no pod listed, nothing on the node.
func TestHostileRequestsRefused(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	tmp := harness.NewDir(t, "kthostile-")
	logLink := filepath.Join(tmp, "loglink")
	if err := os.Symlink("/etc", logLink); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, field string
		mutate      func(c *runtimeapi.PodSandboxConfig)
	}{
		{"hostname with a newline", "config.hostname", func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "web\n6.6.6.6 evil" }},
		{"hostname of 65 bytes", "config.hostname", func(c *runtimeapi.PodSandboxConfig) { c.Hostname = strings.Repeat("h", 65) }},
		{"nameserver injection", "config.dns_config.servers[0]", func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"10.0.0.1\nnameserver 6.6.6.6"} }},
		{"search injection", "config.dns_config.searches[1]", func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches[1] = "x.local\noptions debug" }},
		{"option injection", "config.dns_config.options[0]", func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Options = []string{"ndots:1 debug"} }},
		{"CNI_ARGS injection in the name", "config.metadata.name", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "p;IP=10.99.0.9" }},
		{"CNI_ARGS injection in the namespace", "config.metadata.namespace", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "test;K8S_POD_NAMESPACE=kube-system" }},
		{"NUL in the uid", "config.metadata.uid", func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "u\x00" }},
		{"container port 0", "config.port_mappings[0].container_port", func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 0, HostPort: 38090}}
		}},
		{"host port 65536", "config.port_mappings[0].host_port", func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 65536}}
		}},
		{"unknown protocol", "config.port_mappings[0].protocol", func(c *runtimeapi.PodSandboxConfig) {
			c.PortMappings = []*runtimeapi.PortMapping{{Protocol: 9, ContainerPort: 80, HostPort: 38091}}
		}},
		{"node sysctl, pod without pause", `config.linux.sysctls["kernel.panic"]`, func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.panic": "1"} }},
		{"node sysctl, pod with pause", `config.linux.sysctls["vm.swappiness"]`, func(c *runtimeapi.PodSandboxConfig) {
			withPause(c).Linux.Sysctls = map[string]string{"vm.swappiness": "1"}
		}},
		{"sysctl path traversal", "config.linux.sysctls", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net/../../../../etc/x": "1"}
		}},
		{"log directory with ..", "config.log_directory", func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = tmp + "/../../etc" }},
		{"log directory through a link", "config.log_directory", func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = logLink + "/pod" }},
		{"systemd slice under cgroupfs", "config.linux.cgroup_parent", func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods-besteffort-pod1.slice" }},
		{"negative pod cpu quota", "config.linux.resources.cpu_quota", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuQuota: -5}
		}},
	} {
		cfg := podConfig(k, "hostile")
		tc.mutate(cfg)
		_, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		wantInvalid(t, tc.name, err, tc.field)
	}
	if ps, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil || len(ps.Items) != 0 {
		t.Fatalf("refused pods are listed: %v %v", ps, err)
	}
	k.CheckNoLeaks(t)

	p := newPod(t, k, "victim")
	fifo := filepath.Join(tmp, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, field string
		mutate      func(c *runtimeapi.ContainerConfig)
	}{
		{"host /proc over /proc", "config.mounts[0].container_path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/proc", HostPath: "/proc"}}
		}},
		{"mount over /proc/sys", "config.mounts[0].container_path", func(c *runtimeapi.ContainerConfig) {
			c.Mounts = []*runtimeapi.Mount{{ContainerPath: "/proc/sys", HostPath: tmp}}
		}},
		{"cpu quota -5", "config.linux.resources.cpu_quota", func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpuQuota: -5}
		}},
		{"garbage cpuset", "config.linux.resources.cpuset_cpus", func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpusetCpus: "0-one"}
		}},
		{"cpuset naming absent CPUs", "config.linux.resources.cpuset_cpus", func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources = &runtimeapi.LinuxContainerResources{CpusetCpus: "4000"}
		}},
		{"unknown capability", "add_capabilities[0]", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities = &runtimeapi.Capability{AddCapabilities: []string{"CAP_GODMODE"}}
		}},
		{"group without user", "run_as_group", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 1}
		}},
		{"NUL in an argument", "config.command[1]", func(c *runtimeapi.ContainerConfig) { c.Command = []string{"echo", "a\x00b"} }},
		{"seccomp profile /dev/zero", "/dev/zero", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/dev/zero"}
		}},
		{"seccomp profile FIFO", "not a regular file", func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: fifo}
		}},
	} {
		cfg := ctrConfig("hostile", images.Busybox, "sleep", "1")
		tc.mutate(cfg)
		start := time.Now()
		_, err := p.create(t, cfg)
		wantInvalid(t, tc.name, err, tc.field)
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: took %s", tc.name, took)
		}
	}
	id := p.run(t, ctrConfig("updated", images.Busybox, "sleep", "1000"))
	_, err := k.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{CpuQuota: -5}})
	wantInvalid(t, "update with cpu quota -5", err, "cpu_quota")
	if cs, err := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(cs.Containers) != 1 {
		t.Errorf("containers after the refusals: %v %v", cs, err)
	}

	// Compatibility: a missing host_path is made, as containerd's CRI does.
	hostDir := filepath.Join(tmp, "made", "by", "keelson")
	cfg := ctrConfig("hostpath", images.Busybox, "sh", "-c", "echo hi > /data/f; sleep 1000")
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: hostDir}}
	p.run(t, cfg)
	eventually(t, "a file written into the made host_path", 10*time.Second, func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(hostDir, "f"))
		return err == nil && string(b) == "hi\n", fmt.Sprintf("%q %v", b, err)
	})
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// An image whose /etc/passwd is a FIFO, a device node or a huge file makes
// CreateContainer fail quickly with InvalidArgument; keelson stays up.
func TestHostileImages(t *testing.T) {
	k := containerTestKeelson(t)
	for _, tc := range []struct {
		name string
		file images.File
	}{
		{"fifo", images.File{Type: tar.TypeFifo}},
		{"zero", images.File{Type: tar.TypeChar, Devmajor: 1, Devminor: 5}},
		{"huge", images.File{Data: bytes.Repeat([]byte("u:x:1:1::/:/bin/sh\n"), 2<<20/19)}},
	} {
		img, err := images.HostileImage(tc.file)
		if err != nil {
			t.Fatal(err)
		}
		ref := "docker.io/keelson/hostile-" + tc.name + ":1"
		if err := reg.Push(ref, img); err != nil {
			t.Fatal(err)
		}
		mustPull(t, k, ref)
	}
	p := newPod(t, k, "hostimg")
	for _, name := range []string{"fifo", "zero", "huge"} {
		cfg := ctrConfig("c-"+name, "docker.io/keelson/hostile-"+name+":1", "true")
		cfg.Linux.SecurityContext.RunAsUsername = "nobody"
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
		cancel()
		wantInvalid(t, name, err, "/etc/passwd")
	}
	if _, err := k.Runtime.Version(harness.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("keelson after hostile images: %v", err)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// A pod whose CNI DEL can never succeed is still stopped and removed: after its
// retries keelson releases the IP, the iptables rules and the netns itself.
func TestRemovalFinishesWhenDELAlwaysFails(t *testing.T) {
	harness.RequireRoot(t)
	bin := harness.NewDir(t, "ktcni-")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "delfail"), "./test/integration/testdata/delfail")
	build.Dir = harness.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the delfail plugin: %v\n%s", err, out)
	}
	k := startWithPlugins(t, "1.1.0", bin, `{"type":"portmap","capabilities":{"portMappings":true}}, {"type":"delfail"}`)
	for _, pause := range []bool{false, true} {
		cfg := podConfig(k, fmt.Sprintf("undeletable-%v", pause))
		if pause {
			withPause(cfg)
		}
		cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38095}}
		id := runPod(t, k, cfg)
		if len(k.Leaks(t)) == 0 {
			t.Fatal("the pod holds no IP or rule: the test proves nothing")
		}
		stopAndRemovePod(t, k, id)
		k.CheckNoLeaks(t)
	}
	if !strings.Contains(k.Log(), "CNI DEL keeps failing") {
		t.Error("the forced release was not logged")
	}
}

// Concurrent calls on one object never bring it back after its removal, and never
// leave a container in a pod that is gone.
func TestNoResurrection(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	t.Run("20 concurrent stops and removals of one pod", func(t *testing.T) {
		for _, pause := range []bool{false, true} {
			cfg := podConfig(k, fmt.Sprintf("race-%v", pause))
			if pause {
				withPause(cfg)
			}
			id := runPod(t, k, cfg)
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var err error
					if i%2 == 0 {
						_, err = k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
					} else {
						_, err = k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
					}
					if err != nil {
						t.Errorf("call %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			k.CheckNoLeaks(t)
		}
	})
	t.Run("start racing removal of a container", func(t *testing.T) {
		p := newPod(t, k, "startrace")
		for i := range 10 {
			id, err := p.create(t, ctrConfig(fmt.Sprintf("c%d", i), images.Busybox, "sleep", "1000"))
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id})
				if err != nil && status.Code(err) != codes.NotFound {
					t.Errorf("start: %v", err)
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := k.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
					t.Errorf("remove: %v", err)
				}
			}()
			wg.Wait()
			if _, err := k.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
				t.Errorf("container %d after its removal: %v", i, err)
			}
		}
		if _, err := os.Stat(filepath.Join(k.StateDir, "containers")); err == nil {
			if left, _ := os.ReadDir(filepath.Join(k.StateDir, "containers")); len(left) > 0 {
				t.Errorf("state dirs of removed containers: %v", left)
			}
		}
		stopAndRemovePod(t, k, p.id)
		k.CheckNoLeaks(t)
	})
	t.Run("create racing removal of the pod", func(t *testing.T) {
		for i := range 10 {
			p := newPod(t, k, fmt.Sprintf("createrace-%d", i))
			var wg sync.WaitGroup
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := p.create(t, ctrConfig("c", images.Busybox, "sleep", "1000"))
				if err != nil && status.Code(err) != codes.NotFound && status.Code(err) != codes.FailedPrecondition {
					t.Errorf("create: %v", err)
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
					t.Errorf("remove pod: %v", err)
				}
			}()
			wg.Wait()
			cs, err := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs.Containers {
				t.Errorf("container %s outlived its pod %s", c.Id, c.PodSandboxId)
			}
		}
		k.CheckNoLeaks(t)
	})
}

// Registry passwords and environment values never reach the log, even at -v=10.
func TestSecretsNotLogged(t *testing.T) {
	harness.RequireRoot(t)
	r := busyboxRegistry(t, "docker.io/keelson/private:1")
	password := fmt.Sprintf("pw-%d", rand.Int64())
	r.SetMiddleware(registry.BasicAuth("alice", password))
	k := startWithRegistry(t, r, func(o *harness.Options) { o.Args = []string{"-v", "10"} })
	auth := &runtimeapi.AuthConfig{Username: "alice", Password: password}
	if _, err := pull(t, k, "docker.io/keelson/private:1", auth); err != nil {
		t.Fatal(err)
	}
	p := newPod(t, k, "secrets")
	cfg := ctrConfig("env", "docker.io/keelson/private:1", "true")
	envSecret := fmt.Sprintf("env-%d", rand.Int64())
	cfg.Envs = []*runtimeapi.KeyValue{{Key: "DB_PASSWORD", Value: []byte(envSecret)}}
	p.run(t, cfg)
	stopAndRemovePod(t, k, p.id)
	log := k.Log()
	if !strings.Contains(log, "PullImage") || !strings.Contains(log, "DB_PASSWORD") {
		t.Fatal("the requests were not logged at -v=10: the test proves nothing")
	}
	for _, secret := range []string{password, envSecret} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// Clients create and remove pods while keelson is killed -9 again and again; after
// kubelet-style cleanup through the CRI nothing is left: no IP reservation, no rule,
// no netns, no shim (pod creations cut short inside CNI ADD or task creation
// included).
func TestKillDuringCreationLeavesNothing(t *testing.T) {
	k := containerTestKeelson(t)
	mustPull(t, k, images.Pause)
	const clients, kills = 4, 3
	var stop atomic.Bool
	var seq atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n := seq.Add(1)
				cfg := podConfig(k, fmt.Sprintf("chaos-%d", n))
				if n%2 == 0 {
					withPause(cfg)
				}
				cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: int32(40000 + n%1000)}}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if run, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg}); err == nil {
					cc := ctrConfig("main", images.Busybox, "sleep", "1000")
					if cr, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: cc, SandboxConfig: cfg}); err == nil {
						_, _ = k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
					}
					if c%2 == 0 {
						_, _ = k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId})
						_, _ = k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId})
					}
				} else {
					time.Sleep(50 * time.Millisecond) // keelson is down
				}
				cancel()
			}
		}()
	}
	for range kills {
		time.Sleep(time.Duration(1500+rand.IntN(2000)) * time.Millisecond)
		k.Kill()
		k.Start(harness.Options{Registry: reg})
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d pods attempted", seq.Load())
	cleanupLikeKubelet(t, k)
	k.CheckNoLeaks(t)
}
