// Package harness runs keelson for integration tests against the real stack: it
// builds the binary once, starts it with its own state dirs, socket, CNI network and
// (by default) its own supervised containerd, gives tests CRI clients, and on cleanup
// stops everything and removes every mount and file it made.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/mounts"
	"github.com/keelson/keelson/test/registry"
)

// Prefix is where hack/install-deps.sh puts the pinned binaries.
const Prefix = "/opt/keelson"

// RequireRoot skips the test when not running as root (the real stack needs it).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containerd, runc and CNI plugins (make test runs as root)")
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds keelson once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keelson-bin-")
		if err != nil {
			buildErr = err
			return
		}
		markOwner(dir)
		binPath = filepath.Join(dir, "keelson")
		for _, b := range [][2]string{{binPath, "./cmd/agent"}, {filepath.Join(dir, "keelson-logger"), "./cmd/logger"}} {
			// With failpoints, which tests switch on through the environment.
			cmd := exec.Command("go", "build", "-tags", "failpoints", "-o", b[0], b[1])
			cmd.Dir = RepoRoot()
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("building %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(self)))
}

// Options shape one keelson instance.
type Options struct {
	// ContainerdAddress: use this external containerd instead of a supervised one.
	ContainerdAddress string
	// ContainerdBinary to supervise (default Prefix/bin/containerd).
	ContainerdBinary string
	// CNIConfig is written into the instance's own CNI conf dir unless NoCNIConfig.
	// Default: the deploy conflist with the bridge renamed to Bridge and its own subnet.
	NoCNIConfig bool
	// StatsInterval is the config's stats_interval; zero: the default.
	StatsInterval time.Duration
	// MetricsAddress is metrics.address; empty: a free port on 127.0.0.1 (MetricsURL
	// finds it).
	MetricsAddress string
	// LeakAuditInterval is metrics.leak_audit_interval; zero: no background audit.
	LeakAuditInterval time.Duration
	// ActivationSocket is handed to keelson as systemd's socket activation does.
	ActivationSocket *os.File
	// ExtraConfig is appended to the generated config.toml.
	ExtraConfig string
	// Registry, when set, is made the mirror of every registry host tests use
	// (hosts.toml in the instance's own registry config dir).
	Registry *registry.Registry
	// PullProgressTimeout overrides images.pull_progress_timeout (e.g. "2s").
	PullProgressTimeout string
	// AuthFile sets images.auth_file.
	AuthFile string
	// SandboxImage overrides images.sandbox_image.
	SandboxImage string
	// CNIConfList, when set, is written instead of the default bridge network; it
	// gets the instance (for its bridge name, subnet and dirs).
	CNIConfList func(k *Keelson) string
	// ExtraCNIBinDir is searched for plugins before the installed ones.
	ExtraCNIBinDir string
	// Args are extra command-line flags.
	Args []string
	// Env is added to keelson's environment (e.g. KEELSON_FAILPOINTS=...).
	Env []string
	// CNIConfTemplate is cni.conf_template (rendered with the pod CIDR kubelet reports).
	CNIConfTemplate string
	// NetNS runs keelson (and the containerd it supervises) in this named network
	// namespace (/run/netns), as one node of a multi-node cluster.
	NetNS string
	// RegistryAddr, with Registry, is the address the mirror config names instead of
	// the registry's own (a node namespace reaches it through a proxy).
	RegistryAddr string
}

// Keelson is one running instance.
type Keelson struct {
	t        testing.TB
	Dir      string // everything of this instance lives under here
	RootDir  string
	StateDir string
	Socket   string
	Config   string // config file path
	CNIDir   string
	Bridge   string
	Subnet   string
	LogPath  string
	CertsDir string // images.registry_config_dir
	// ContainerdSocket is the containerd keelson uses (supervised or external).
	ContainerdSocket string

	cleanupSet bool
	// CgroupParent is a cgroup parent for this instance's pods (removed at the end).
	CgroupParent string
	Cmd          *exec.Cmd
	exited       chan struct{}
	exitErr      error
	cniConfList  func(k *Keelson) string
	conn         *grpc.ClientConn
	Runtime      runtimeapi.RuntimeServiceClient
	Images       runtimeapi.ImageServiceClient
}

var instanceSeq struct {
	sync.Mutex
	n int
}

// NewDir makes a short-named temporary directory (unix socket paths are limited to
// 108 bytes) that is unmounted and removed when the test ends.
func NewDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	// Searchable by others, as /run and /var/lib are: a pod's root in its own user
	// namespace is another host user, and must reach its root filesystem below.
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	markOwner(dir)
	t.Cleanup(func() {
		if os.Getenv("KEELSON_TEST_KEEP") != "" && t.Failed() {
			t.Logf("kept %s (KEELSON_TEST_KEEP)", dir)
			mounts.UnmountUnder(dir)
			return
		}
		RemoveAll(t, dir)
	})
	return dir
}

// Prepare lays out an instance's dirs and config without starting it.
func Prepare(t testing.TB, opts Options) *Keelson {
	t.Helper()
	instanceSeq.Lock()
	instanceSeq.n++
	n := instanceSeq.n
	instanceSeq.Unlock()
	dir := NewDir(t, "kt-")
	k := &Keelson{
		t:        t,
		Dir:      dir,
		RootDir:  filepath.Join(dir, "root"),
		StateDir: filepath.Join(dir, "run"),
		Socket:   filepath.Join(dir, "run", "keelson.sock"),
		Config:   filepath.Join(dir, "config.toml"),
		CNIDir:   filepath.Join(dir, "net.d"),
		LogPath:  filepath.Join(dir, "keelson.log"),
		CertsDir: filepath.Join(dir, "certs.d"),
		// Unique per process and instance, so parallel runs never share a bridge.
		Bridge: fmt.Sprintf("kt%d-%d", os.Getpid(), n),
		Subnet: freeSubnet(t),
	}
	k.CgroupParent = newCgroupParent(t, n)
	// The bridge plugin never deletes its bridge; the test does.
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", k.Bridge).Run() })
	if err := os.MkdirAll(k.CNIDir, 0o755); err != nil {
		t.Fatal(err)
	}
	k.cniConfList = opts.CNIConfList
	if !opts.NoCNIConfig {
		k.WriteCNIConfig()
	}
	binDirs := fmt.Sprintf("%q", Prefix+"/cni/bin")
	if opts.ExtraCNIBinDir != "" {
		binDirs = fmt.Sprintf("%q, %s", opts.ExtraCNIBinDir, binDirs)
	}
	if err := os.MkdirAll(k.CertsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if opts.Registry != nil {
		if err := opts.Registry.WriteMirrorConfigFor(k.CertsDir, opts.RegistryAddr); err != nil {
			t.Fatal(err)
		}
	}
	k.ContainerdSocket = opts.ContainerdAddress
	if k.ContainerdSocket == "" {
		k.ContainerdSocket = filepath.Join(k.StateDir, "containerd", "containerd.sock")
	}
	progressTimeout := opts.PullProgressTimeout
	if progressTimeout == "" {
		progressTimeout = "1m"
	}
	sandboxImage := opts.SandboxImage
	if sandboxImage == "" {
		sandboxImage = "registry.k8s.io/pause:3.10"
	}
	binary := opts.ContainerdBinary
	if binary == "" {
		binary = Prefix + "/bin/containerd"
	}
	statsInterval := opts.StatsInterval
	if statsInterval == 0 {
		statsInterval = 10 * time.Second
	}
	metricsAddress := opts.MetricsAddress
	if metricsAddress == "" {
		metricsAddress = "127.0.0.1:0" // a free port: instances may run side by side
	}
	cfg := fmt.Sprintf(`root_dir = %q
state_dir = %q
log_level = 4
stats_interval = %q

[grpc]
  socket = %q
  shutdown_grace = "5s"

[containerd]
  address = %q
  binary = %q
  log_level = "debug"

[cni]
  conf_dir = %q
  bin_dirs = [%s]
  conf_template = %q

[images]
  registry_config_dir = %q
  pull_progress_timeout = %q
  auth_file = %q
  sandbox_image = %q

[metrics]
  address = %q
  leak_audit_interval = %q
`, k.RootDir, k.StateDir, statsInterval.String(), k.Socket, opts.ContainerdAddress, binary, k.CNIDir, binDirs, opts.CNIConfTemplate,
		k.CertsDir, progressTimeout, opts.AuthFile, sandboxImage, metricsAddress, opts.LeakAuditInterval.String())
	if err := os.WriteFile(k.Config, []byte(cfg+opts.ExtraConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return k
}

// WriteCNIConfig writes the instance's bridge network config into its conf dir.
func (k *Keelson) WriteCNIConfig() {
	if k.cniConfList != nil {
		if err := os.WriteFile(filepath.Join(k.CNIDir, "10-test.conflist"), []byte(k.cniConfList(k)), 0o644); err != nil {
			k.t.Fatal(err)
		}
		return
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.1.0",
  "name": "%s",
  "plugins": [
    {"type": "bridge", "bridge": "%s", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "%s"}]], "routes": [{"dst": "0.0.0.0/0"}],
              "dataDir": "%s"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}`, k.Bridge, k.Bridge, k.Subnet, filepath.Join(k.Dir, "ipam"))
	if err := os.WriteFile(filepath.Join(k.CNIDir, "10-test.conflist"), []byte(conf), 0o644); err != nil {
		k.t.Fatal(err)
	}
}

// Start starts a prepared instance and waits until its socket answers Version.
func (k *Keelson) Start(opts Options) {
	t := k.t
	t.Helper()
	if err := k.StartNoWait(opts); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitReady(90 * time.Second); err != nil {
		t.Fatalf("%v\n--- keelson log ---\n%s", err, k.Log())
	}
}

// StartNoWait starts the binary and returns at once.
func (k *Keelson) StartNoWait(opts Options) error {
	logf, err := os.OpenFile(k.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"--config", k.Config}, opts.Args...)
	k.Cmd = exec.Command(Binary(k.t), args...)
	if opts.ActivationSocket != nil {
		// As systemd does: the socket as fd 3, LISTEN_PID naming keelson itself.
		k.Cmd = exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"`, "sh", Binary(k.t)}, args...)...)
		k.Cmd.ExtraFiles = []*os.File{opts.ActivationSocket}
	}
	if opts.NetNS != "" {
		k.Cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + opts.NetNS, Binary(k.t)}, args...)...)
	}
	k.Cmd.Stdout, k.Cmd.Stderr = logf, logf
	k.Cmd.Env = append(os.Environ(), opts.Env...)
	k.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.Cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	k.exited = make(chan struct{})
	go func() {
		k.exitErr = k.Cmd.Wait()
		logf.Close()
		close(k.exited)
	}()
	if !k.cleanupSet {
		k.t.Cleanup(k.cleanup) // once for all restarts: it prints the log
		k.cleanupSet = true
	}
	return nil
}

// WaitReady waits until Version answers on the socket.
func (k *Keelson) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-k.exited:
			return fmt.Errorf("keelson exited during start-up: %v", k.exitErr)
		default:
		}
		if _, err := os.Stat(k.Socket); err == nil {
			if k.conn == nil {
				k.dial()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := k.Runtime.Version(ctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("keelson did not answer on %s within %s", k.Socket, timeout)
}

func (k *Keelson) dial() {
	// kubelet accepts responses up to 16 MiB; so does this client.
	conn, err := grpc.NewClient("unix://"+k.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		k.t.Fatal(err)
	}
	k.conn = conn
	k.Runtime = runtimeapi.NewRuntimeServiceClient(conn)
	k.Images = runtimeapi.NewImageServiceClient(conn)
}

// Exited is closed when the process has exited; ExitErr is its Wait error.
func (k *Keelson) Exited() <-chan struct{} { return k.exited }
func (k *Keelson) ExitErr() error          { return k.exitErr }

// Stop sends SIGTERM and waits for exit; it returns the process's Wait error.
func (k *Keelson) Stop(timeout time.Duration) error {
	if k.Cmd == nil || k.Cmd.Process == nil {
		return nil
	}
	_ = k.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
		return k.exitErr
	case <-time.After(timeout):
		_ = k.Cmd.Process.Kill()
		<-k.exited
		return fmt.Errorf("keelson did not stop within %s after SIGTERM", timeout)
	}
}

// Reload edits the config file (each old string must be in it; it becomes new),
// sends SIGHUP and waits until keelson logs the reload; it returns that log line.
func (k *Keelson) Reload(t testing.TB, oldNew ...string) string {
	t.Helper()
	b, err := os.ReadFile(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(cfg, oldNew[i]) {
			t.Fatalf("the config has no %q:\n%s", oldNew[i], cfg)
		}
		cfg = strings.Replace(cfg, oldNew[i], oldNew[i+1], 1)
	}
	if err := os.WriteFile(k.Config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	const marker = `"SIGHUP: config reloaded"`
	before := strings.Count(k.Log(), marker)
	if err := k.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log := k.Log(); strings.Count(log, marker) > before {
			line := log[strings.LastIndex(log, marker):]
			if i := strings.IndexByte(line, '\n'); i >= 0 {
				line = line[:i]
			}
			return line
		}
	}
	t.Fatal("keelson did not log the reload")
	return ""
}

// Kill sends SIGKILL and waits.
func (k *Keelson) Kill() {
	_ = k.Cmd.Process.Kill()
	<-k.exited
}

// Log is the instance's log so far.
func (k *Keelson) Log() string {
	b, _ := os.ReadFile(k.LogPath)
	return string(b)
}

// MetricsURL is the base URL of the running instance's metrics endpoint (TCP), from
// its log.
func (k *Keelson) MetricsURL(t testing.TB) string {
	t.Helper()
	const marker = `"Metrics endpoint listening" address="`
	log := k.Log()
	i := strings.LastIndex(log, marker)
	if i < 0 {
		t.Fatal("keelson logged no metrics endpoint")
	}
	addr := log[i+len(marker):]
	return "http://" + addr[:strings.IndexByte(addr, '"')]
}

// ContainerdPids lists containerd processes started on this instance's config.
func (k *Keelson) ContainerdPids() []int {
	return PidsWithArg(filepath.Join(k.StateDir, "containerd", "config.toml"))
}

func (k *Keelson) cleanup() {
	// A failed test may leave pods: remove them through keelson while it runs, so
	// CNI DEL releases their IPs and iptables rules.
	select {
	case <-k.exited:
	default:
		if k.Runtime != nil {
			k.removeAllPods()
		}
	}
	defer sweepIPTables(k.Bridge)
	if k.conn != nil {
		k.conn.Close()
		k.conn = nil
	}
	select {
	case <-k.exited:
	default:
		if err := k.Stop(20 * time.Second); err != nil {
			k.t.Logf("stopping keelson: %v", err)
		}
	}
	// Whatever a failed test left running: containerd, shims and loggers (their
	// command lines name this instance's dirs) and the containers' processes (in its
	// cgroup parent). A passing test leaves none of these.
	for _, pid := range PidsWithArg(k.Dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range cgroupPids(k.CgroupParent) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if k.t.Failed() {
		k.t.Logf("--- keelson log (%s) ---\n%s", k.LogPath, tail(k.Log(), 200))
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// PidsWithArg lists processes whose command line contains arg.
func PidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(b, []byte(arg)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessAlive reports whether pid exists and is not a zombie.
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func (k *Keelson) removeAllPods() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ps, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range ps.Items {
		_, _ = k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
		_, _ = k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// sweepIPTables deletes the iptables rules tagged with a CNI network name, and the
// per-pod CNI chains they jump to: the last resort when a test could not remove its
// pods.
func sweepIPTables(network string) {
	rules := cni.TaggedRules(network, func(string) bool { return true })
	_ = cni.DeleteRules(context.Background(), rules)
}
