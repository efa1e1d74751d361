package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/wait"
)

// cluster is keelson under a kubelet registered with a one-node control plane.
type cluster struct {
	k  *harness.Keelson
	cp *ControlPlane
	kl *Kubelet
}

func (c *cluster) kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return c.cp.MustKubectl(t, args...)
}

func (c *cluster) apply(t *testing.T, manifest string) {
	t.Helper()
	c.cp.MustApply(t, manifest)
}

// jsonpath reads one field of a pod.
func (c *cluster) jsonpath(t *testing.T, pod, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := c.cp.Kubectl(ctx, "get", "pod", pod, "-o", "jsonpath="+path)
	return out
}

func (c *cluster) waitPod(t *testing.T, pod, path, want string, timeout time.Duration) {
	t.Helper()
	wait.For(t, fmt.Sprintf("pod %s %s == %q", pod, path, want), timeout, func() error {
		if got := c.jsonpath(t, pod, path); got != want {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

// pod is a manifest for a pod bound to the node, without a service account token
// (there is no controller manager to make one).
func pod(name, body string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
spec:
  nodeName: localhost
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
%s`, name, body)
}

func TestCluster(t *testing.T) {
	harness.RequireRoot(t)
	cp := StartControlPlane(t)
	opts := harness.Options{Registry: reg}
	k := harness.Prepare(t, opts)
	k.Start(opts)
	c := &cluster{k: k, cp: cp}
	c.kl = StartKubelet(t, k, cp, k.ContainerdSocket)
	wait.For(t, "node localhost Ready", 3*time.Minute, func() error {
		out, _ := cp.Kubectl(context.Background(), "get", "node", "localhost", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if out != "True" {
			return fmt.Errorf("Ready=%q", out)
		}
		return nil
	})
	c.kubectl(t, "create", "serviceaccount", "default")

	// All pods at once: they start in parallel; the scenarios then check each.
	c.apply(t, pod("shared", `  volumes: [{name: shared, emptyDir: {}}]
  containers:
  - name: writer
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo hello-from-writer; echo shared > /data/f; exec sleep 100000"]
    volumeMounts: [{name: shared, mountPath: /data}]
  - name: reader
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "exec sleep 100000"]
    volumeMounts: [{name: shared, mountPath: /data}]
    readinessProbe: {exec: {command: ["cat", "/data/f"]}, periodSeconds: 1}
`))
	c.apply(t, pod("probes", `  containers:
  - name: healthy
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 100000"]
    livenessProbe: {exec: {command: ["cat", "/tmp/ok"]}, periodSeconds: 1, failureThreshold: 2}
  - name: sick
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "exec sleep 100000"]
    livenessProbe: {exec: {command: ["cat", "/tmp/missing"]}, periodSeconds: 1, failureThreshold: 1}
`))
	c.apply(t, pod("web", `  containers:
  - name: server
    image: docker.io/keelson/echoserver:1.0
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
`))
	c.apply(t, pod("fails", `  restartPolicy: Never
  containers:
  - name: main
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "exit 1"]
`))
	c.apply(t, pod("oom", `  restartPolicy: Never
  containers:
  - name: main
    image: docker.io/library/busybox:1.36
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    resources: {limits: {memory: 20Mi}}
`))
	c.apply(t, pod("interactive", `  containers:
  - name: cat
    image: docker.io/library/busybox:1.36
    command: ["cat"]
    stdin: true
`))

	scenario(t, "two containers sharing an emptyDir are Running and Ready", func(t *testing.T) {
		c.waitPod(t, "shared", "{.status.conditions[?(@.type==\"Ready\")].status}", "True", 3*time.Minute)
		ps, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			LabelSelector: map[string]string{"io.kubernetes.pod.name": "shared"},
		}})
		if err != nil || len(ps.Items) != 1 || ps.Items[0].State != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Fatalf("CRI view of pod shared: %v %v", ps, err)
		}
		if ip := c.jsonpath(t, "shared", "{.status.podIP}"); !strings.HasPrefix(ip, strings.TrimSuffix(k.Subnet, "0/24")) {
			t.Errorf("pod IP %q not from keelson's network %s", ip, k.Subnet)
		}
	})

	scenario(t, "container logs through kubectl logs and in CRI format on disk", func(t *testing.T) {
		wait.For(t, "kubectl logs", time.Minute, func() error {
			out, err := cp.Kubectl(context.Background(), "logs", "shared", "-c", "writer")
			if err != nil || strings.TrimSpace(out) != "hello-from-writer" {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		})
		uid := c.jsonpath(t, "shared", "{.metadata.uid}")
		b, err := os.ReadFile(filepath.Join(c.kl.PodLogsDir, "default_shared_"+uid, "writer", "0.log"))
		if err != nil || !containsCRILine(b, "stdout", "hello-from-writer") {
			t.Errorf("CRI log file: %q %v", b, err)
		}
	})

	scenario(t, "exec liveness probes: a passing one keeps the container, a failing one restarts it", func(t *testing.T) {
		wait.For(t, "sick container restarted", 3*time.Minute, func() error {
			n, _ := strconv.Atoi(c.jsonpath(t, "probes", `{.status.containerStatuses[?(@.name=="sick")].restartCount}`))
			if n < 1 {
				return fmt.Errorf("restartCount %d", n)
			}
			return nil
		})
		if n := c.jsonpath(t, "probes", `{.status.containerStatuses[?(@.name=="healthy")].restartCount}`); n != "0" {
			t.Errorf("healthy container restarted %s times", n)
		}
	})

	scenario(t, "httpGet readiness probe on the pod IP", func(t *testing.T) {
		c.waitPod(t, "web", "{.status.conditions[?(@.type==\"Ready\")].status}", "True", 3*time.Minute)
		ip := c.jsonpath(t, "web", "{.status.podIP}")
		resp, err := http.Get("http://" + ip + ":8080/direct")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "GET /direct") {
			t.Errorf("server answered %q", b)
		}
	})

	scenario(t, "a container exiting 1 with restartPolicy Never fails the pod", func(t *testing.T) {
		c.waitPod(t, "fails", "{.status.phase}", "Failed", 3*time.Minute)
		if code := c.jsonpath(t, "fails", "{.status.containerStatuses[0].state.terminated.exitCode}"); code != "1" {
			t.Errorf("exit code %q", code)
		}
	})

	scenario(t, "a memory limit OOM-kills the container", func(t *testing.T) {
		c.waitPod(t, "oom", "{.status.phase}", "Failed", 3*time.Minute)
		if r := c.jsonpath(t, "oom", "{.status.containerStatuses[0].state.terminated.reason}"); r != "OOMKilled" {
			t.Errorf("reason %q", r)
		}
	})

	scenario(t, "kubectl exec with stdin, attach and port-forward go through keelson's streaming", func(t *testing.T) {
		c.waitPod(t, "interactive", "{.status.phase}", "Running", 3*time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := cp.KubectlStdin(ctx, []byte("via-exec\n"), "exec", "-i", "shared", "-c", "reader", "--", "cat")
		if err != nil || out != "via-exec\n" {
			t.Errorf("kubectl exec -i: %q %v", out, err)
		}
		// attach: what goes into cat's stdin comes back on its stdout.
		attach := exec.CommandContext(ctx, filepath.Join(K8sBin, "kubectl"), "--kubeconfig", cp.Kubeconfig, "attach", "-i", "interactive", "-c", "cat")
		stdin, _ := attach.StdinPipe()
		stdout, _ := attach.StdoutPipe()
		if err := attach.Start(); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 64)
			var acc string
			for !strings.Contains(acc, "via-attach") {
				n, err := stdout.Read(buf)
				acc += string(buf[:n])
				if err != nil {
					break
				}
			}
			got <- acc
		}()
		deadline := time.After(30 * time.Second)
		tick := time.NewTicker(time.Second)
		var attached string
	loop:
		for {
			select {
			case attached = <-got:
				break loop
			case <-tick.C:
				_, _ = io.WriteString(stdin, "via-attach\n") // until the attach is up
			case <-deadline:
				break loop
			}
		}
		tick.Stop()
		_ = attach.Process.Signal(syscall.SIGTERM)
		_ = attach.Wait()
		if !strings.Contains(attached, "via-attach") {
			t.Errorf("kubectl attach echoed %q", attached)
		}

		local := freePort(t)
		pf := exec.CommandContext(ctx, filepath.Join(K8sBin, "kubectl"), "--kubeconfig", cp.Kubeconfig, "port-forward", "pod/web", fmt.Sprintf("%d:8080", local))
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		wait.For(t, "port-forward answers", 30*time.Second, func() error {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/forwarded", local))
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "GET /forwarded") {
				return fmt.Errorf("%q", b)
			}
			return nil
		})
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/parallel", local))
				if err == nil {
					resp.Body.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("parallel request through port-forward: %v", err)
			}
		}
	})

	// kubelet's /stats/summary cannot be used on these VMs: cAdvisor fails on the
	// root device ("cannot find filesystem info for device /dev/vda") before it gets
	// to pods. The pod stats kubelet reads over CRI are checked instead.
	scenario(t, "pod and container stats over CRI for a running pod", func(t *testing.T) {
		wait.For(t, "stats of web", 2*time.Minute, func() error {
			ps, err := k.Runtime.ListPodSandboxStats(harness.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{
				Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"io.kubernetes.pod.name": "web"}},
			})
			if err != nil {
				return err
			}
			if len(ps.Stats) != 1 || len(ps.Stats[0].GetLinux().GetContainers()) != 1 {
				return fmt.Errorf("stats: %v", ps.Stats)
			}
			ctr := ps.Stats[0].Linux.Containers[0]
			if ctr.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || ctr.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
				return fmt.Errorf("web's container stats are empty: %v", ctr)
			}
			return nil
		})
	})

	scenario(t, "pods keep running across a keelson restart and kubelet keeps working", func(t *testing.T) {
		before := c.jsonpath(t, "web", "{.status.containerStatuses[0].containerID}")
		if err := k.Stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		k.Start(harness.Options{Registry: reg})
		c.apply(t, pod("after-restart", `  containers:
  - name: main
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "exec sleep 100000"]
`))
		c.waitPod(t, "after-restart", "{.status.phase}", "Running", 3*time.Minute)
		if after := c.jsonpath(t, "web", "{.status.containerStatuses[0].containerID}"); after != before {
			t.Errorf("web's container changed across the restart: %s → %s", before, after)
		}
		if r := c.jsonpath(t, "web", "{.status.containerStatuses[0].restartCount}"); r != "0" {
			t.Errorf("web restarted %s times", r)
		}
		c.waitPod(t, "web", "{.status.conditions[?(@.type==\"Ready\")].status}", "True", time.Minute)
	})

	scenario(t, "deleting the pods tears everything down with nothing leaked", func(t *testing.T) {
		c.kubectl(t, "delete", "pods", "--all", "--wait=true", "--timeout=3m")
		wait.For(t, "CRI empty", 3*time.Minute, func() error {
			ps, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				return err
			}
			if len(ps.Items) != 0 {
				return fmt.Errorf("%d sandboxes left", len(ps.Items))
			}
			return nil
		})
		k.CheckNoLeaks(t)
	})
}
