// Package cluster runs keelson as the runtime of every node of a real multi-node
// Kubernetes cluster on this one machine: each node a network namespace with its own
// keelson (and supervised containerd) and kubelet, joined by a bridge on the host
// where etcd, kube-apiserver, kube-scheduler and kube-controller-manager (node IPAM
// on) run. keelson renders its CNI config from the pod CIDR each node is given
// (cni.conf_template); routes between the nodes' pod CIDRs join the pod networks.
package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/test/e2e"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
	"github.com/keelson/keelson/test/tally"
	"github.com/keelson/keelson/test/wait"
)

var (
	reg    *registry.Registry
	counts tally.Tally
)

func TestMain(m *testing.M) {
	code := harness.MainWithRegistry(m, func(r *registry.Registry) { reg = r })
	counts.Print("cluster")
	os.Exit(code)
}

const (
	nodes       = 3
	clusterCIDR = "10.251.0.0/16"
	serviceCIDR = "10.252.0.0/24"
)

// network is the host bridge and the node namespaces on it.
type network struct {
	bridge, hostIP string
	ns, ips        []string
}

// crictl lists a node keelson's pods (IDs), stdout only.
func crictl(t testing.TB, k *harness.Keelson, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(harness.Prefix, "bin", "crictl"), append([]string{"--runtime-endpoint", "unix://" + k.Socket}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crictl %v: %v", args, err)
	}
	return string(out)
}

// run runs a command and fails the test on error.
func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// setupNetwork makes the bridge (10.250.0.1/24 on the host) and one namespace per
// node with a veth on it (10.250.0.1<i>), default route via the host.
func setupNetwork(t *testing.T) *network {
	tag := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	n := &network{bridge: "kclbr" + tag, hostIP: "10.250.0.1"}
	t.Cleanup(func() {
		for _, ns := range n.ns {
			_ = exec.Command("ip", "netns", "delete", ns).Run()
		}
		_ = exec.Command("ip", "link", "delete", n.bridge).Run()
	})
	run(t, "ip", "link", "add", n.bridge, "type", "bridge")
	run(t, "ip", "addr", "add", n.hostIP+"/24", "dev", n.bridge)
	run(t, "ip", "link", "set", n.bridge, "up")
	for i := range nodes {
		ns, veth, ip := fmt.Sprintf("kcl%s-%d", tag, i), fmt.Sprintf("kclv%s%d", tag, i), fmt.Sprintf("10.250.0.1%d", i)
		run(t, "ip", "netns", "add", ns)
		n.ns, n.ips = append(n.ns, ns), append(n.ips, ip)
		run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run(t, "ip", "link", "set", veth, "master", n.bridge, "up")
		in := func(args ...string) { run(t, append([]string{"ip", "netns", "exec", ns}, args...)...) }
		in("ip", "addr", "add", ip+"/24", "dev", "eth0")
		in("ip", "link", "set", "eth0", "up")
		in("ip", "link", "set", "lo", "up")
		in("ip", "route", "add", "default", "via", n.hostIP)
		in("sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	return n
}

// proxy forwards TCP from a listener on addr to target (the test registry, which
// listens on the host's loopback only).
func proxy(t *testing.T, addr, target string) string {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}

// confTemplate is each node's CNI network: a bridge in the node's namespace with
// host-local addresses from the node's pod CIDR.
const confTemplate = `{"cniVersion":"1.1.0","name":"cluster","plugins":[
 {"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":"{{.PodCIDR}}"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}`

// testHandler is the RuntimeClass handler the upstream RuntimeClass specs expect every
// node to have (e2e's PreconfiguredRuntimeClassHandler), as containerd's CI configures.
var testHandler = fmt.Sprintf("\n[runtime.handlers.test-handler]\n  binary_name = %q\n", filepath.Join(harness.Prefix, "bin", "runc"))

type node struct {
	name, ip string
	k        *harness.Keelson
	kl       *e2e.Kubelet
}

// startKubeProxy runs kube-proxy (iptables mode) in the node's namespace.
func startKubeProxy(t *testing.T, cp *e2e.ControlPlane, dir, ns string, nd *node) {
	cfg := filepath.Join(dir, "kube-proxy-"+nd.name+".yaml")
	conf := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
mode: iptables
clusterCIDR: %s
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: %s:10256
metricsBindAddress: %s:10249
conntrack: {maxPerCore: 0, min: 0}
`, cp.Kubeconfig, clusterCIDR, nd.name, nd.ip, nd.ip, nd.ip)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e2e.StartProc(t, dir, "kube-proxy-"+nd.name, exec.Command("nsenter", "--net=/run/netns/"+ns,
		filepath.Join(e2e.K8sBin, "kube-proxy"), "--config", cfg, "--v=1"))
}

type cluster struct {
	cp    *e2e.ControlPlane
	net   *network
	nodes []*node
}

func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return c.cp.MustKubectl(t, args...)
}

func (c *cluster) apply(t *testing.T, manifest string) {
	t.Helper()
	c.cp.MustApply(t, manifest)
}

// kubeletOptions place node i's kubelet, its pods resolving through the cluster DNS.
func (c *cluster) kubeletOptions(i int) e2e.KubeletOptions {
	return e2e.KubeletOptions{NodeName: fmt.Sprintf("node-%d", i), NetNS: c.net.ns[i], NodeIP: c.net.ips[i],
		ClusterDNS: []string{dnsIP}, ClusterDomain: dnsDomain, Port: 10250}
}

// heldClusterPid is where make cluster-up (its default CLUSTER_DIR) records the
// process holding its cluster.
const heldClusterPid = "/run/keelson-cluster/pid"

// refuseBesideHeldCluster fails t while a cluster of make cluster-up runs: every
// cluster takes the same bridge address, node addresses and pod CIDR routes.
func refuseBesideHeldCluster(t *testing.T) {
	b, err := os.ReadFile(heldClusterPid)
	if err != nil {
		return
	}
	if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 && pid != os.Getpid() && harness.ProcessAlive(pid) {
		t.Fatalf("a cluster of make cluster-up runs (pid %d, %s), on the addresses this test takes: make cluster-down first", pid, heldClusterPid)
	}
}

// startCluster brings the whole cluster up: network, control plane, nodes Ready with
// their pod CIDRs routed, and the cluster DNS.
func startCluster(t *testing.T) *cluster {
	refuseBesideHeldCluster(t)
	c := &cluster{}
	// The kubelets' cgroup roots go last (cleanups run in reverse): the pods that run
	// to the end (CoreDNS) keep a root busy when its kubelet's cleanup removes it, until
	// the node's keelson cleanup removes them.
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.kl != nil {
				harness.RemoveCgroup(nd.kl.CgroupRoot)
			}
		}
	})
	c.net = setupNetwork(t)
	regAddr := proxy(t, c.net.hostIP+":0", reg.Addr)
	c.cp = e2e.StartControlPlaneWith(t, e2e.ControlPlaneOptions{BindAddress: c.net.hostIP, ServiceCIDR: serviceCIDR, AddressTypes: "InternalIP"})
	dir := harness.NewDir(t, "kcl-")
	e2e.StartProc(t, dir, "kube-scheduler", exec.Command(filepath.Join(e2e.K8sBin, "kube-scheduler"),
		"--kubeconfig", c.cp.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=1"))
	e2e.StartProc(t, dir, "kube-controller-manager", exec.Command(filepath.Join(e2e.K8sBin, "kube-controller-manager"),
		"--kubeconfig", c.cp.Kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--allocate-node-cidrs", "--cluster-cidr", clusterCIDR, "--node-cidr-mask-size", "24",
		"--service-cluster-ip-range", serviceCIDR,
		"--service-account-private-key-file", filepath.Join(c.cp.Dir, "sa.key"),
		"--root-ca-file", filepath.Join(c.cp.Dir, "apiserver-certs", "apiserver.crt"),
		"--use-service-account-credentials=false",
		"--node-monitor-grace-period=20s",
		"--v=1"))
	for i := range nodes {
		nd := &node{name: fmt.Sprintf("node-%d", i), ip: c.net.ips[i]}
		tmplDir := harness.NewDir(t, "kcl-tmpl-")
		tmpl := filepath.Join(tmplDir, "cni.tmpl")
		if err := os.WriteFile(tmpl, []byte(fmt.Sprintf(confTemplate, filepath.Join(tmplDir, "ipam"))), 0o644); err != nil {
			t.Fatal(err)
		}
		nd.k = harness.Prepare(t, harness.Options{NetNS: c.net.ns[i], Registry: reg, RegistryAddr: regAddr, NoCNIConfig: true, CNIConfTemplate: tmpl,
			ExtraConfig: testHandler})
		nd.k.Start(harness.Options{NetNS: c.net.ns[i]})
		nd.kl = e2e.StartKubeletWith(t, nd.k, c.cp, nd.k.ContainerdSocket, c.kubeletOptions(i))
		startKubeProxy(t, c.cp, dir, c.net.ns[i], nd)
		c.nodes = append(c.nodes, nd)
	}
	// Each node's pod CIDR, routed from every other node and from the host.
	cidrs := map[string]string{}
	wait.For(t, "every node has a pod CIDR", 3*time.Minute, func() error {
		for _, nd := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := c.cp.Kubectl(ctx, "get", "node", nd.name, "-o", "jsonpath={.spec.podCIDR}")
			cancel()
			if err != nil || out == "" {
				return fmt.Errorf("%s: pod CIDR %q %v", nd.name, out, err)
			}
			cidrs[nd.name] = out
		}
		return nil
	})
	for i, nd := range c.nodes {
		for j, other := range c.nodes {
			if i != j {
				run(t, "ip", "netns", "exec", c.net.ns[i], "ip", "route", "replace", cidrs[other.name], "via", other.ip)
			}
		}
		run(t, "ip", "route", "replace", cidrs[nd.name], "via", nd.ip)
		route := cidrs[nd.name]
		t.Cleanup(func() { _ = exec.Command("ip", "route", "delete", route).Run() })
	}
	wait.For(t, "every node Ready", 3*time.Minute, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := c.cp.Kubectl(ctx, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
		if err != nil {
			return err
		}
		if strings.Count(out, "=True") != nodes {
			return fmt.Errorf("nodes: %s", out)
		}
		return nil
	})
	c.deployDNS(t)
	return c
}

// scenario runs one counted scenario.
func scenario(t *testing.T, name string, fn func(t *testing.T)) { counts.Run(t, name, fn) }

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: default}
spec:
  replicas: %d
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 2
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      containers:
      - name: c
        image: docker.io/library/busybox:1.36
        command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
        env: [{name: VERSION, value: "%s"}]
`

// liveByNode counts the pods of app=spread not being deleted, by node.
func (c *cluster) liveByNode(t *testing.T) map[string]int {
	out := c.kubectl(t, "get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.metadata.deletionTimestamp}{"\n"}{end}`)
	m := map[string]int{}
	for _, l := range strings.Fields(out) {
		if name, deleting, _ := strings.Cut(l, "="); deleting == "" {
			m[name]++
		}
	}
	return m
}

// podsByNode counts the running pods of app=spread on each node.
func (c *cluster) podsByNode(t *testing.T) map[string]int {
	out := c.kubectl(t, "get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.status.phase}{"\n"}{end}`)
	m := map[string]int{}
	for _, l := range strings.Fields(out) {
		if name, phase, ok := strings.Cut(l, "="); ok && phase == "Running" {
			m[name]++
		}
	}
	return m
}

const echo = `apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      automountServiceAccountToken: false
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: echo}}}
      containers:
      - name: echo
        image: docker.io/keelson/echoserver:1.0
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  automountServiceAccountToken: false
  nodeName: node-0
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/keelson/echoserver:1.0
    command: ["sleep", "100000"]
`

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: default}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: docker.io/library/busybox:1.36
        command: ["sleep", "100000"]
`

const jobs = `apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  completions: 3
  parallelism: 3
  template:
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers:
      - name: c
        image: docker.io/library/busybox:1.36
        command: ["sh", "-c", "echo done"]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: every-minute, namespace: default}
spec:
  schedule: "* * * * *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          automountServiceAccountToken: false
          restartPolicy: Never
          containers:
          - name: c
            image: docker.io/library/busybox:1.36
            command: ["true"]
`

// jsonpath runs kubectl get with a jsonpath output.
func (c *cluster) jsonpath(t *testing.T, path string, args ...string) string {
	t.Helper()
	return c.kubectl(t, append([]string{"get"}, append(args, "-o", "jsonpath="+path)...)...)
}

func TestCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(filepath.Join(e2e.K8sBin, "kube-controller-manager")); err != nil {
		t.Skipf("no kube-controller-manager in %s: run `make k8s`", e2e.K8sBin)
	}
	if _, err := os.Stat(images.CoreDNSBinary); err != nil {
		t.Skipf("no %s: run `make k8s`", images.CoreDNSBinary)
	}
	c := startCluster(t)
	root := t // what outlives a scenario (a restarted kubelet) is the whole test's

	scenario(t, "pod to pod across nodes, and a ClusterIP Service through kube-proxy", func(t *testing.T) {
		c.apply(t, echo)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if _, err := c.cp.KubectlStdin(ctx, []byte(echo), "delete", "-f", "-", "--wait"); err != nil {
				t.Error(err)
			}
		}()
		wait.For(t, "3 echo servers ready, one per node, and the client running", 4*time.Minute, func() error {
			out := c.kubectl(t, "get", "pods", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
			ready, nodesSeen := 0, map[string]bool{}
			for _, l := range strings.Fields(out) {
				if f := strings.Split(l, "="); len(f) == 3 && f[2] == "True" {
					ready++
					if strings.HasPrefix(f[0], "echo-") {
						nodesSeen[f[1]] = true
					}
				}
			}
			if ready != 4 || len(nodesSeen) != 3 {
				return fmt.Errorf("pods: %s", out)
			}
			return nil
		})
		out := c.kubectl(t, "get", "pods", "-l", "app=echo", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.podIP}={.spec.nodeName}{"\n"}{end}`)
		for _, l := range strings.Fields(out) {
			f := strings.Split(l, "=")
			got := c.kubectl(t, "exec", "client", "--", "/echoserver", "get", "http://"+f[1]+":8080/")
			if !strings.Contains(got, "host="+f[0]) {
				t.Errorf("from node-0 to %s on %s (%s): %q", f[0], f[2], f[1], got)
			}
		}
		ip := c.kubectl(t, "get", "service", "echo", "-o", "jsonpath={.spec.clusterIP}")
		hosts := map[string]bool{}
		wait.For(t, "the Service answers from more than one server", 2*time.Minute, func() error {
			got, err := c.cp.Kubectl(context.Background(), "exec", "client", "--", "/echoserver", "get", "http://"+ip+"/")
			if err != nil {
				return err
			}
			if _, h, ok := strings.Cut(got, "host="); ok {
				hosts[strings.TrimSpace(h)] = true
			}
			if len(hosts) < 2 {
				return fmt.Errorf("answers from %v", hosts)
			}
			return nil
		})
	})

	scenario(t, "Service by name through DNS", c.serviceByName)

	scenario(t, "a DaemonSet runs on every node", func(t *testing.T) {
		c.apply(t, daemonSet)
		wait.For(t, "a DaemonSet pod ready on each node", 4*time.Minute, func() error {
			if got := c.jsonpath(t, "{.status.numberReady}", "daemonset", "everywhere"); got != fmt.Sprint(nodes) {
				return fmt.Errorf("%s ready", got)
			}
			return nil
		})
		c.kubectl(t, "delete", "daemonset", "everywhere", "--wait")
	})

	scenario(t, "a Job and a CronJob run to completion", func(t *testing.T) {
		c.apply(t, jobs)
		wait.For(t, "the Job completes", 4*time.Minute, func() error {
			if got := c.jsonpath(t, "{.status.succeeded}", "job", "once"); got != "3" {
				return fmt.Errorf("%q succeeded", got)
			}
			return nil
		})
		wait.For(t, "the CronJob has run once", 3*time.Minute, func() error {
			if got := c.jsonpath(t, "{.status.lastSuccessfulTime}", "cronjob", "every-minute"); got == "" {
				return fmt.Errorf("no successful run yet")
			}
			return nil
		})
		c.kubectl(t, "delete", "cronjob", "every-minute", "--wait")
		c.kubectl(t, "delete", "jobs", "--all", "--wait")
	})

	scenario(t, "a node whose keelson and kubelet stop goes NotReady, its pods come back elsewhere; back, keelson cleans up what was deleted meanwhile", func(t *testing.T) {
		c.apply(t, fmt.Sprintf(deployment, 9, "1"))
		wait.For(t, "9 replicas running on all nodes", 4*time.Minute, func() error {
			if m := c.podsByNode(t); m["node-0"]+m["node-1"]+m["node-2"] != 9 || m["node-2"] == 0 {
				return fmt.Errorf("%v", m)
			}
			return nil
		})
		down := c.nodes[2]
		down.kl.Stop()
		down.k.Kill()
		wait.For(t, "node-2 NotReady", 3*time.Minute, func() error {
			if got := c.jsonpath(t, `{.status.conditions[?(@.type=="Ready")].status}`, "node", down.name); got == "True" {
				return fmt.Errorf("Ready=%s", got)
			}
			return nil
		})
		wait.For(t, "9 live replicas on the two other nodes", 5*time.Minute, func() error {
			if m := c.liveByNode(t); m["node-0"]+m["node-1"] != 9 {
				return fmt.Errorf("%v", m)
			}
			return nil
		})
		down.k.Start(harness.Options{NetNS: c.net.ns[2]})
		down.kl = e2e.StartKubeletWith(root, down.k, c.cp, down.k.ContainerdSocket, c.kubeletOptions(2))
		wait.For(t, "node-2 Ready again and its old replicas gone", 5*time.Minute, func() error {
			if got := c.jsonpath(t, `{.status.conditions[?(@.type=="Ready")].status}`, "node", down.name); got != "True" {
				return fmt.Errorf("Ready=%s", got)
			}
			out := c.kubectl(t, "get", "pods", "-l", "app=spread", "--field-selector", "spec.nodeName=node-2", "-o", "name")
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("still on node-2: %s", out)
			}
			return nil
		})
		wait.For(t, "keelson on node-2 holds no pod of the deleted replicas", 3*time.Minute, func() error {
			if out := crictl(t, down.k, "pods", "-q", "--label", "app=spread"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("pods: %s", out)
			}
			return nil
		})
		c.apply(t, fmt.Sprintf(deployment, 0, "1"))
		wait.For(t, "no replica left", 4*time.Minute, func() error {
			if out := c.kubectl(t, "get", "pods", "-l", "app=spread", "-o", "name"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("pods left: %s", out)
			}
			return nil
		})
	})

	scenario(t, "a Deployment of 30 replicas spreads over the 3 nodes, scales to 60 and to 0, leaving nothing", func(t *testing.T) {
		for _, n := range []int{30, 60} {
			c.apply(t, fmt.Sprintf(deployment, n, "1"))
			wait.For(t, fmt.Sprintf("%d replicas running", n), 6*time.Minute, func() error {
				total, m := 0, c.podsByNode(t)
				for _, v := range m {
					total += v
				}
				if total != n {
					return fmt.Errorf("%d running: %v", total, m)
				}
				return nil
			})
			m := c.podsByNode(t)
			for _, nd := range c.nodes {
				if m[nd.name] == 0 {
					t.Errorf("no replica on %s: %v", nd.name, m)
				}
			}
			t.Logf("%d replicas: %v", n, m)
		}
		// A rolling update of all 60.
		c.apply(t, fmt.Sprintf(deployment, 60, "2"))
		c.kubectl(t, "rollout", "status", "deployment/spread", "--timeout=8m")
		// kubectl drain moves node-1's replicas to the others.
		c.kubectl(t, "drain", "node-1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=5m")
		wait.For(t, "60 replicas running, none on the drained node", 6*time.Minute, func() error {
			m := c.podsByNode(t)
			if m["node-1"] != 0 || m["node-0"]+m["node-2"] != 60 {
				return fmt.Errorf("%v", m)
			}
			return nil
		})
		c.kubectl(t, "uncordon", "node-1")
		c.apply(t, fmt.Sprintf(deployment, 0, "2"))
		wait.For(t, "no replica left", 6*time.Minute, func() error {
			if out := c.kubectl(t, "get", "pods", "-l", "app=spread", "-o", "name"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("pods left: %d", strings.Count(out, "\n"))
			}
			return nil
		})
		for i, nd := range c.nodes {
			// kube-system's pods (CoreDNS) stay.
			wait.For(t, nd.name+": keelson holds no pod of default", 2*time.Minute, func() error {
				if out := crictl(t, nd.k, "pods", "-q", "--namespace", "default"); strings.TrimSpace(out) != "" {
					return fmt.Errorf("pods: %s", out)
				}
				return nil
			})
			out, err := exec.Command("nsenter", "--net=/run/netns/"+c.net.ns[i], harness.Binary(t), "doctor", "--config", nd.k.Config).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "0 orphaned objects") {
				t.Errorf("keelson doctor on %s: %v\n%s", nd.name, err, out)
			}
		}
	})
}
