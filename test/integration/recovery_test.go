package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// crashPoints are the failpoints of RunPodSandbox, CreateContainer, StartContainer,
// StopPodSandbox and RemovePodSandbox, in the order the pod flow reaches them.
var crashPoints = []string{
	"sandbox/run/reserved", "sandbox/run/netns", "sandbox/run/cni", "sandbox/run/image",
	"sandbox/run/shm", "sandbox/run/files", "sandbox/run/container", "sandbox/run/task",
	"sandbox/run/started", "sandbox/run/done", "sandbox/run/namespaces",
	"container/create/reserved", "container/create/spec", "container/create/container", "container/create/done",
	"container/start/io", "container/start/task", "container/start/started",
	"sandbox/stop/containers", "sandbox/stop/infra", "sandbox/stop/network",
	"sandbox/remove/stopped", "sandbox/remove/containers", "sandbox/remove/netns", "sandbox/remove/container",
}

// podFlow is what kubelet does for a pod of one container, start to end. It stops at
// the first error (the crash). Pods with a pause process go through the pause steps,
// the others through the namespace pinning.
func podFlow(t *testing.T, k *harness.Keelson, name string, attempt uint32, pause bool) error {
	ctx := harness.Ctx(t)
	cfg := podConfig(k, name)
	if pause {
		withPause(cfg)
	}
	cfg.Metadata.Attempt = attempt
	cfg.PortMappings = []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 38084}}
	run, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return err
	}
	cc := ctrConfig("main", images.Busybox, "sleep", "1000")
	cc.Metadata.Attempt = attempt
	cr, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: cc, SandboxConfig: cfg})
	if err != nil {
		return err
	}
	if _, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return err
	}
	if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		return err
	}
	_, err = k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId})
	return err
}

// cleanupLikeKubelet stops and removes whatever containers and sandboxes exist, as
// kubelet's pod workers and garbage collector do after a restart.
func cleanupLikeKubelet(t *testing.T, k *harness.Keelson) {
	t.Helper()
	ctx := harness.Ctx(t)
	cs, err := k.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Containers {
		if _, err := k.Runtime.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: c.Id}); err != nil {
			t.Errorf("stop leftover container: %v", err)
		}
		if _, err := k.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
			t.Errorf("remove leftover container: %v", err)
		}
	}
	ps, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps.Items {
		if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("stop leftover sandbox: %v", err)
		}
		if _, err := k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("remove leftover sandbox: %v", err)
		}
	}
}

func TestCrashAtEveryStepLeavesNothing(t *testing.T) {
	k := startWithRegistry(t, reg)
	mustPull(t, k, images.Busybox)
	mustPull(t, k, images.Pause)
	for i, fp := range crashPoints {
		t.Run(strings.ReplaceAll(fp, "/", "_"), func(t *testing.T) {
			if err := k.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			k.Start(harness.Options{Registry: reg, Env: []string{"KEELSON_FAILPOINTS=" + fp + "=crash"}})
			pause := fp != "sandbox/run/namespaces"
			err := podFlow(t, k, "crash", 0, pause)
			if err == nil {
				t.Fatalf("the flow never reached %s", fp)
			}
			select {
			case <-k.Exited():
			case <-time.After(30 * time.Second):
				t.Fatalf("keelson did not crash at %s (flow error: %v)", fp, err)
			}
			k.Start(harness.Options{Registry: reg})
			cleanupLikeKubelet(t, k)
			// The retry of a new attempt works end to end after the crash.
			if err := podFlow(t, k, "crash", uint32(i+1), pause); err != nil {
				t.Fatalf("flow after the crash at %s: %v", fp, err)
			}
			k.CheckNoLeaks(t)
		})
	}
}

func TestTimedOutCreatesAreKeptForTheRetry(t *testing.T) {
	k := startWithRegistry(t, reg, func(o *harness.Options) {
		o.Env = []string{"KEELSON_FAILPOINTS=sandbox/run/files=sleep:3s,container/create/spec=sleep:3s"}
	})
	mustPull(t, k, images.Busybox)
	cfg := podConfig(k, "slow")
	short, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := k.Runtime.RunPodSandbox(short, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow RunPodSandbox: %v, want DeadlineExceeded", err)
	}
	// kubelet's retry with the same pod gets the sandbox, not "name is reserved".
	run, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("retried RunPodSandbox: %v", err)
	}
	ps, _ := k.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if len(ps.Items) != 1 || ps.Items[0].Id != run.PodSandboxId {
		t.Errorf("sandboxes after the retry: %v", ps.Items)
	}
	cc := ctrConfig("main", images.Busybox, "sleep", "1000")
	short2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	_, err = k.Runtime.CreateContainer(short2, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: cc, SandboxConfig: cfg})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("slow CreateContainer: %v, want DeadlineExceeded", err)
	}
	cr, err := k.Runtime.CreateContainer(harness.Ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: cc, SandboxConfig: cfg})
	if err != nil {
		t.Fatalf("retried CreateContainer: %v", err)
	}
	cs, _ := k.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{})
	if len(cs.Containers) != 1 || cs.Containers[0].Id != cr.ContainerId {
		t.Errorf("containers after the retry: %v", cs.Containers)
	}
	stopAndRemovePod(t, k, run.PodSandboxId)
	k.CheckNoLeaks(t)
}
