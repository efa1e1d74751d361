// Package e2e runs keelson under a real kubelet (standalone with static pods, and
// registered with a one-node control plane of etcd + kube-apiserver) and checks the
// scenarios a node must get right, from the Kubernetes side and from the CRI side.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/wait"
)

// K8sBin is where hack/build-k8s.sh puts kubelet, kube-apiserver, kubectl and etcd.
var K8sBin = harness.Prefix + "/k8s/bin"

// proc is a process the e2e run started; it is stopped when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t testing.TB, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ControlPlane is etcd + kube-apiserver on loopback with token auth.
type ControlPlane struct {
	Dir        string
	Server     string // https://127.0.0.1:port
	Token      string
	Kubeconfig string
	etcd, api  *proc
}

// ControlPlaneOptions change where and how the apiserver serves.
type ControlPlaneOptions struct {
	BindAddress string // default 127.0.0.1
	ServiceCIDR string // default 10.96.0.0/24
	// AddressTypes is --kubelet-preferred-address-types (default Hostname: the
	// one-node e2e names its node localhost).
	AddressTypes string
}

// StartControlPlane starts etcd and kube-apiserver on loopback; both stop when the
// test ends (the apiserver before etcd).
func StartControlPlane(t testing.TB) *ControlPlane {
	return StartControlPlaneWith(t, ControlPlaneOptions{})
}

// StartControlPlaneWith starts etcd and kube-apiserver as opts say.
func StartControlPlaneWith(t testing.TB, opts ControlPlaneOptions) *ControlPlane {
	t.Helper()
	if opts.BindAddress == "" {
		opts.BindAddress = "127.0.0.1"
	}
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = "10.96.0.0/24"
	}
	if opts.AddressTypes == "" {
		opts.AddressTypes = "Hostname"
	}
	dir := harness.NewDir(t, "kte2e-cp-")
	cp := &ControlPlane{Dir: dir}
	clientPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	cp.etcd = startProc(t, dir, "etcd", exec.Command(filepath.Join(K8sBin, "etcd"),
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--log-level", "warn",
	))
	t.Cleanup(func() {
		// The apiserver first: without etcd it would hang in its shutdown.
		if cp.api != nil {
			cp.api.stop()
		}
		cp.etcd.stop()
	})

	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	cp.Token = hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(cp.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	writePEM(t, filepath.Join(dir, "sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	writePEM(t, filepath.Join(dir, "sa.pub"), "PUBLIC KEY", pub)

	cp.Server = fmt.Sprintf("https://%s:%d", opts.BindAddress, apiPort)
	cp.api = startProc(t, dir, "kube-apiserver", exec.Command(filepath.Join(K8sBin, "kube-apiserver"),
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		"--bind-address", opts.BindAddress,
		"--advertise-address", opts.BindAddress,
		"--secure-port", fmt.Sprint(apiPort),
		"--cert-dir", filepath.Join(dir, "apiserver-certs"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "AlwaysAllow",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", opts.ServiceCIDR,
		"--allow-privileged",
		// The one-node e2e's node is named localhost (kubelet refuses a loopback node IP).
		"--kubelet-preferred-address-types", opts.AddressTypes,
		"--v", "1",
	))
	cp.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, cp.Server, cp.Token)
	if err := os.WriteFile(cp.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "kube-apiserver ready", 2*time.Minute, func() error {
		select {
		case <-cp.api.done:
			t.Fatalf("kube-apiserver exited:\n%s", tail(cp.api.logText(), 40))
		default:
		}
		_, err := cp.Kubectl(context.Background(), "get", "--raw", "/readyz")
		return err
	})
	return cp
}

// Kubectl runs kubectl against the control plane and returns its stdout.
func (cp *ControlPlane) Kubectl(ctx context.Context, args ...string) (string, error) {
	return cp.KubectlStdin(ctx, nil, args...)
}

// KubectlStdin runs kubectl with the given stdin.
func (cp *ControlPlane) KubectlStdin(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(K8sBin, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// MustKubectl runs kubectl (bounded to 3 minutes) and fails the test on error.
func (cp *ControlPlane) MustKubectl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := cp.Kubectl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustApply applies a manifest (bounded to a minute) and fails the test on error.
func (cp *ControlPlane) MustApply(t testing.TB, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cp.KubectlStdin(ctx, []byte(manifest), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Kubelet is a kubelet pointed at one keelson.
type Kubelet struct {
	Dir          string
	ReadOnlyPort int
	Port         int
	ManifestDir  string
	PodLogsDir   string
	CgroupRoot   string
	p            *proc
}

// StartKubelet runs kubelet against keelson k: standalone (cp == nil, static pods
// from ManifestDir) or registered with cp as node "localhost". It runs in its own
// mount namespace with the sysctl files it would otherwise change host-wide
// (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) bind-mounted over; the
// volumes it mounts under its root dir reach the host's (see sharedMount).
func StartKubelet(t testing.TB, k *harness.Keelson, cp *ControlPlane, containerdSocket string) *Kubelet {
	return StartKubeletWith(t, k, cp, containerdSocket, KubeletOptions{})
}

// KubeletOptions place a kubelet as one node of several.
type KubeletOptions struct {
	NodeName string // default localhost
	NetNS    string // run in this named network namespace (/run/netns)
	NodeIP   string // --node-ip, and where kubelet serves; default 127.0.0.1
	// ClusterDNS and ClusterDomain are the nameservers and search domain kubelet
	// writes into the resolv.conf of ClusterFirst pods; none by default (no cluster DNS).
	ClusterDNS    []string
	ClusterDomain string
	// Port is the kubelet's port; default a free one. A node with an address of its
	// own takes 10250, where the apiserver's node proxy users (e2e specs) expect it.
	Port int
}

// StartKubeletWith runs kubelet as StartKubelet does, placed as opts say.
func StartKubeletWith(t testing.TB, k *harness.Keelson, cp *ControlPlane, containerdSocket string, opts KubeletOptions) *Kubelet {
	t.Helper()
	dir := harness.NewDir(t, "kte2e-kl-")
	kl := &Kubelet{
		Dir:          dir,
		ReadOnlyPort: freePort(t),
		Port:         freePort(t),
		ManifestDir:  filepath.Join(dir, "manifests"),
		PodLogsDir:   filepath.Join(dir, "pod-logs"),
		CgroupRoot:   fmt.Sprintf("/keelson-e2e-%d", os.Getpid()),
	}
	if opts.Port != 0 {
		kl.Port = opts.Port
	}
	if opts.NodeName == "" {
		opts.NodeName = "localhost"
	} else {
		kl.CgroupRoot += "-" + opts.NodeName
	}
	if opts.NodeIP == "" {
		opts.NodeIP = "127.0.0.1"
	}
	for _, d := range []string{kl.ManifestDir, kl.PodLogsDir, filepath.Join(dir, "sysctl")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// kubelet needs its cgroup root to exist in every hierarchy.
	for _, c := range harness.CgroupControllers() {
		if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", c, kl.CgroupRoot), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { harness.RemoveCgroup(kl.CgroupRoot) })

	healthz := freePort(t)
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: %s
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
staticPodPath: %s
fileCheckFrequency: 2s
syncFrequency: 10s
podLogsDir: %s
volumePluginDir: %s
address: %s
port: %d
readOnlyPort: %d
healthzBindAddress: %s
healthzPort: %d
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
localStorageCapacityIsolation: false
resolvConf: ""
`, k.Socket, k.Socket, kl.CgroupRoot, kl.ManifestDir, kl.PodLogsDir, filepath.Join(dir, "volume-plugins"),
		opts.NodeIP, kl.Port, kl.ReadOnlyPort, opts.NodeIP, healthz)
	if len(opts.ClusterDNS) > 0 {
		cfg += fmt.Sprintf("clusterDNS: [%s]\n", strings.Join(opts.ClusterDNS, ", "))
	}
	if opts.ClusterDomain != "" {
		cfg += fmt.Sprintf("clusterDomain: %s\n", opts.ClusterDomain)
	}
	cfgPath := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(dir, "root")
	if err := sharedMount(rootDir); err != nil {
		t.Fatal(err)
	}
	args := []string{
		"--config", cfgPath,
		"--root-dir", rootDir,
		"--cert-dir", filepath.Join(dir, "pki"),
		"--hostname-override", opts.NodeName,
		"--containerd", containerdSocket,
		"--v", "2",
	}
	if cp != nil {
		args = append(args, "--kubeconfig", cp.Kubeconfig)
	}
	if opts.NodeIP != "127.0.0.1" {
		args = append(args, "--node-ip", opts.NodeIP)
	}
	// Copies of the sysctl files kubelet writes, bind-mounted over the real ones in
	// kubelet's private mount namespace.
	var binds strings.Builder
	for _, f := range []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"} {
		src := filepath.Join("/proc/sys", f)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(dir, "sysctl", strings.ReplaceAll(f, "/", "_"))
		if err := os.WriteFile(copyPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&binds, "mount --bind %s %s && ", copyPath, src)
	}
	// The namespace keeps the host's propagation, so that the root dir stays a peer;
	// /proc is made private before the binds, which must not reach the host.
	script := "mount --make-rprivate /proc && " + binds.String() + `exec "$0" "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script, filepath.Join(K8sBin, "kubelet")}, args...)
	if opts.NetNS != "" {
		// nsenter joins the network namespace only (`ip netns exec` would also give
		// kubelet a mount namespace of its own and a new /sys).
		argv = append([]string{"nsenter", "--net=/run/netns/" + opts.NetNS}, argv...)
	}
	kl.p = startProc(t, dir, "kubelet", exec.Command(argv[0], argv[1:]...))
	t.Cleanup(kl.p.stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("diagnostics of kubelet: its last errors (%s)\n%s", kl.p.log, tail(errorLines(kl.p.logText()), 40))
		}
	})
	wait.For(t, "kubelet healthy", 2*time.Minute, func() error {
		select {
		case <-kl.p.done:
			t.Fatalf("kubelet exited:\n%s", tail(kl.p.logText(), 60))
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/healthz", opts.NodeIP, healthz))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	if strings.Contains(kl.p.logText(), "unknown field") {
		t.Fatalf("kubelet ignored a misspelled config field:\n%s", grepLines(kl.p.logText(), "unknown field"))
	}
	return kl
}

// sharedMount makes dir a shared bind mount of itself. Kubelet's volumes (tmpfs for
// secrets and service account tokens) are mounted in kubelet's mount namespace, and
// keelson, in the host's, must see them to bind them into containers: a kubelet
// namespace copied from the host keeps dir as a peer, whose mounts propagate back (as
// a containerized kubelet's /var/lib/kubelet is rshared on real nodes). The test dir's
// removal unmounts what is left.
func sharedMount(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("making %s shared: %w", dir, err)
	}
	return nil
}

// Log is kubelet's log so far.
func (kl *Kubelet) Log() string { return kl.p.logText() }

// errorLines are the klog error lines of a log (E<mmdd> ...).
func errorLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if len(l) > 5 && l[0] == 'E' && l[1] >= '0' && l[1] <= '9' {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Proc is a process a test started.
type Proc = proc

// StartProc starts cmd with its output in dir/name.log; it is stopped (SIGTERM to
// its process group, then SIGKILL) when the test ends.
func StartProc(t testing.TB, dir, name string, cmd *exec.Cmd) *Proc {
	p := startProc(t, dir, name, cmd)
	t.Cleanup(p.stop)
	return p
}

// Log is the process's output so far.
func (p *proc) Log() string { return p.logText() }

// Exited is closed when the process has exited.
func (p *proc) Exited() <-chan struct{} { return p.done }

// Stop stops kubelet (SIGTERM, then SIGKILL).
func (kl *Kubelet) Stop() { kl.p.stop() }
