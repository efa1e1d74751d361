package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/wait"
)

// podList is the part of kubelet's /pods answer the tests read.
type podList struct {
	Items []struct {
		Metadata struct{ Name, Namespace, UID string }
		Status   struct {
			Phase             string
			PodIP             string
			ContainerStatuses []struct {
				Name         string
				Ready        bool
				RestartCount int
				State        map[string]json.RawMessage
			}
		}
	}
}

func (kl *Kubelet) pods() (*podList, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/pods", kl.ReadOnlyPort))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var pl podList
	return &pl, json.NewDecoder(resp.Body).Decode(&pl)
}

const staticPod = `apiVersion: v1
kind: Pod
metadata:
  name: static-web
  namespace: default
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 2
  volumes:
  - name: shared
    emptyDir: {}
  containers:
  - name: writer
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo from-writer > /shared/msg; exec sleep 100000"]
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: reader
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "while [ ! -f /shared/msg ]; do sleep 0.2; done; cat /shared/msg; exec sleep 100000"]
    volumeMounts: [{name: shared, mountPath: /shared}]
    readinessProbe:
      exec: {command: ["cat", "/shared/msg"]}
      periodSeconds: 1
`

func TestStandaloneKubelet(t *testing.T) {
	harness.RequireRoot(t)
	opts := harness.Options{Registry: reg}
	k := harness.Prepare(t, opts)
	k.Start(opts)
	kl := StartKubelet(t, k, nil, k.ContainerdSocket)

	scenario(t, "static pod with two containers sharing an emptyDir runs and is ready", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(kl.ManifestDir, "web.yaml"), []byte(staticPod), 0o644); err != nil {
			t.Fatal(err)
		}
		wait.For(t, "static pod ready", 3*time.Minute, func() error {
			pl, err := kl.pods()
			if err != nil {
				return err
			}
			for _, p := range pl.Items {
				if p.Status.Phase != "Running" {
					return fmt.Errorf("phase %s", p.Status.Phase)
				}
				ready := 0
				for _, c := range p.Status.ContainerStatuses {
					if c.Ready {
						ready++
					}
				}
				if ready == 2 {
					return nil
				}
				return fmt.Errorf("%d of 2 containers ready", ready)
			}
			return fmt.Errorf("no pod yet")
		})
		// The CRI side agrees.
		ps, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
			State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		}})
		if err != nil || len(ps.Items) != 1 || ps.Items[0].Metadata.Name != "static-web-localhost" {
			t.Fatalf("CRI sandboxes: %v %v", ps, err)
		}
		cs, err := k.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: ps.Items[0].Id}})
		if err != nil || len(cs.Containers) != 2 {
			t.Fatalf("CRI containers: %v %v", cs, err)
		}
		// The reader's log, in CRI format under kubelet's pod log dir.
		logs, _ := filepath.Glob(filepath.Join(kl.PodLogsDir, "default_static-web-localhost_*", "reader", "0.log"))
		if len(logs) != 1 {
			t.Fatalf("reader's log file not found under %s", kl.PodLogsDir)
		}
		wait.For(t, "reader logged the message", 30*time.Second, func() error {
			b, _ := os.ReadFile(logs[0])
			if !containsCRILine(b, "stdout", "from-writer") {
				return fmt.Errorf("log: %q", b)
			}
			return nil
		})
	})

	scenario(t, "removing the manifest tears the pod down with nothing leaked", func(t *testing.T) {
		if err := os.Remove(filepath.Join(kl.ManifestDir, "web.yaml")); err != nil {
			t.Fatal(err)
		}
		wait.For(t, "pod gone from CRI", 3*time.Minute, func() error {
			ps, err := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
			if err != nil {
				return err
			}
			cs, err := k.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{})
			if err != nil {
				return err
			}
			if len(ps.Items)+len(cs.Containers) != 0 {
				return fmt.Errorf("%d sandboxes, %d containers left", len(ps.Items), len(cs.Containers))
			}
			return nil
		})
		k.CheckNoLeaks(t)
	})
}
