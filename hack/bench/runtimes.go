package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/registry"
)

// runtime is one CRI endpoint under test.
type runtime struct {
	name         string
	dir          string
	socket       string
	subnet       string
	bridge       string
	cgroupParent string
	rt           runtimeapi.RuntimeServiceClient
	img          runtimeapi.ImageServiceClient
	conn         *grpc.ClientConn
	procs        []*exec.Cmd
	// pids whose RSS and CPU count as this runtime's cost: the CRI server alone, and
	// with the containerd under it (the same process for containerd's CRI).
	selfPids, costPids func() []int
	// doctor runs `keelson doctor` (keelson only).
	doctor func() (string, error)
}

func (r *runtime) dial() error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := os.Stat(r.socket); err == nil {
			conn, err := grpc.NewClient("unix://"+r.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
			if err != nil {
				return err
			}
			rt := runtimeapi.NewRuntimeServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = rt.Version(ctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				r.conn, r.rt, r.img = conn, rt, runtimeapi.NewImageServiceClient(conn)
				return nil
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer on %s", r.name, r.socket)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func cniConf(name, bridge, subnet, ipamDir string) string {
	return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}`, name, bridge, subnet, ipamDir)
}

func startLogged(dir, name string, cmd *exec.Cmd) error {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

// startKeelson runs keelson (built from this repo) with its supervised containerd.
func startKeelson(base, keelsonBin string, reg *registry.Registry) (*runtime, error) {
	dir := filepath.Join(base, "keelson")
	r := &runtime{name: "keelson", dir: dir, socket: filepath.Join(dir, "run", "keelson.sock"),
		subnet: "10.251.0.0/16", bridge: "kbench0", cgroupParent: "/keelson-bench-k"}
	for _, d := range []string{filepath.Join(dir, "net.d"), filepath.Join(dir, "certs.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "net.d", "10-bench.conflist"), []byte(cniConf("kbench", r.bridge, r.subnet, filepath.Join(dir, "ipam"))), 0o644); err != nil {
		return nil, err
	}
	if err := reg.WriteMirrorConfig(filepath.Join(dir, "certs.d")); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`root_dir = %q
state_dir = %q
[grpc]
  socket = %q
[containerd]
  binary = %q
[cni]
  conf_dir = %q
  bin_dirs = [%q]
[images]
  registry_config_dir = %q
[metrics]
  # served, as by default, but on a free port: another keelson may hold the default
  address = "127.0.0.1:0"
`, filepath.Join(dir, "root"), filepath.Join(dir, "run"), r.socket, prefix+"/bin/containerd",
		filepath.Join(dir, "net.d"), prefix+"/cni/bin", filepath.Join(dir, "certs.d"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(keelsonBin, "--config", cfgPath)
	if err := startLogged(dir, "keelson", cmd); err != nil {
		return nil, err
	}
	r.procs = append(r.procs, cmd)
	r.doctor = func() (string, error) {
		var stderr strings.Builder
		cmd := exec.Command(keelsonBin, "doctor", "--config", cfgPath)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out) + stderr.String(), err
		}
		return string(out), nil
	}
	r.selfPids = func() []int { return []int{cmd.Process.Pid} }
	r.costPids = func() []int {
		pids := []int{cmd.Process.Pid}
		return append(pids, pidsWithArg(filepath.Join(dir, "run", "containerd", "config.toml"))...)
	}
	return r, r.dial()
}

// startContainerdCRI runs the same containerd binary with its built-in CRI plugin.
func startContainerdCRI(base string, reg *registry.Registry) (*runtime, error) {
	dir := filepath.Join(base, "containerd")
	r := &runtime{name: "containerd", dir: dir, socket: filepath.Join(dir, "containerd.sock"),
		subnet: "10.252.0.0/16", bridge: "cbench0", cgroupParent: "/keelson-bench-c"}
	if err := r.prepareCRIDirs("cbench", reg); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`version = 3
root = %q
state = %q
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]

[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  level = "warn"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %q
        Root = %q
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), r.socket, r.socket+".ttrpc",
		filepath.Join(dir, "certs.d"), prefix+"/bin/runc", filepath.Join(dir, "runc"),
		prefix+"/cni/bin", filepath.Join(dir, "net.d"))
	return r, r.startCRI(prefix+"/bin/containerd", cfg)
}

// startContainerd16CRI starts Debian's containerd 1.6 (its own binary, shim and CRI
// plugin, config format 2) with the same runc, CNI plugins and registry.
func startContainerd16CRI(base, binary string, reg *registry.Registry) (*runtime, error) {
	dir := filepath.Join(base, "containerd16")
	r := &runtime{name: "containerd-1.6", dir: dir, socket: filepath.Join(dir, "containerd.sock"),
		subnet: "10.253.0.0/16", bridge: "dbench0", cgroupParent: "/keelson-bench-d"}
	if err := r.prepareCRIDirs("dbench", reg); err != nil {
		return nil, err
	}
	cri := `plugins."io.containerd.grpc.v1.cri"`
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
imports = []
disabled_plugins = ["io.containerd.internal.v1.opt"]

[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  level = "warn"

[%[5]s]
  sandbox_image = "registry.k8s.io/pause:3.10"
  restrict_oom_score_adj = true
  [%[5]s.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [%[5]s.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [%[5]s.containerd.runtimes.runc.options]
        BinaryName = %[6]q
        Root = %[7]q
  [%[5]s.cni]
    bin_dir = %[8]q
    conf_dir = %[9]q
  [%[5]s.registry]
    config_path = %[10]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), r.socket, r.socket+".ttrpc", cri,
		prefix+"/bin/runc", filepath.Join(dir, "runc"), prefix+"/cni/bin", filepath.Join(dir, "net.d"), filepath.Join(dir, "certs.d"))
	return r, r.startCRI(binary, cfg)
}

// prepareCRIDirs writes a containerd CRI runtime's CNI network and registry mirror
// config under its dir.
func (r *runtime) prepareCRIDirs(network string, reg *registry.Registry) error {
	for _, d := range []string{filepath.Join(r.dir, "net.d"), filepath.Join(r.dir, "certs.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(r.dir, "net.d", "10-bench.conflist"), []byte(cniConf(network, r.bridge, r.subnet, filepath.Join(r.dir, "ipam"))), 0o644); err != nil {
		return err
	}
	return reg.WriteMirrorConfig(filepath.Join(r.dir, "certs.d"))
}

// startCRI starts a containerd binary with its CRI plugin on cfg (its own shim found
// first: the one beside it) and connects to it.
func (r *runtime) startCRI(binary, cfg string) error {
	cfgPath := filepath.Join(r.dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(binary, "--config", cfgPath)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+":"+os.Getenv("PATH"))
	if err := startLogged(r.dir, "containerd", cmd); err != nil {
		return err
	}
	r.procs = append(r.procs, cmd)
	r.costPids = func() []int { return []int{cmd.Process.Pid} }
	r.selfPids = r.costPids
	return r.dial()
}

// stop ends the runtime's processes (keelson stops its containerd itself).
// teardown removes the runtime's pods, stops it and removes its bridge and cgroup.
func (r *runtime) teardown() {
	if r.rt != nil {
		r.cleanupPods()
	}
	r.stop()
	_ = exec.Command("ip", "link", "delete", r.bridge).Run()
	removeCgroup(r.cgroupParent)
}

func (r *runtime) stop() {
	if r.conn != nil {
		r.conn.Close()
	}
	for _, c := range r.procs {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
		}
	}
}

// rssAndCPU sums VmRSS (bytes) and user+system CPU time over pids.
func rssAndCPU(pids []int) (rss int64, cpu time.Duration) {
	tick := int64(100) // USER_HZ on Linux
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "VmRSS:") {
					f := strings.Fields(l)
					if len(f) >= 2 {
						kb, _ := strconv.ParseInt(f[1], 10, 64)
						rss += kb << 10
					}
				}
			}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i > 0 {
				f := strings.Fields(s[i+2:])
				if len(f) > 13 {
					u, _ := strconv.ParseInt(f[11], 10, 64)
					sy, _ := strconv.ParseInt(f[12], 10, 64)
					cpu += time.Duration((u+sy)*int64(time.Second)) / time.Duration(tick)
				}
			}
		}
	}
	return rss, cpu
}

func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), arg) {
			out = append(out, pid)
		}
	}
	return out
}
