package integration

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// A task creation containerd gave up on (keelson killed inside it) can complete in
// the pod's shim afterwards, unknown to containerd, and that shim would then never
// exit. Removing the container deletes the task from the shim; the pod's shim exits
// with the pod.
func TestStrayTaskInPodShimIsDeleted(t *testing.T) {
	k := containerTestKeelson(t)
	mustPull(t, k, images.Pause)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "stray", func(c *runtimeapi.PodSandboxConfig) { withPause(c) })
	id, err := p.create(t, ctrConfig("main", images.Busybox, "sleep", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	createInShim(t, k, p.id, id)
	cc, err := k.ContainerdClient(t).LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.Task(ctx, nil); !errdefs.IsNotFound(err) {
		t.Fatalf("containerd knows the task made behind its back: %v", err)
	}
	if _, err := k.Runtime.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(k.Log(), "Deleted a task containerd had lost from its shim") {
		t.Error("keelson did not say it deleted the stray task")
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// createInShim has the shim serving group create the task of container id directly,
// as a creation completing after containerd gave up on it does.
func createInShim(t *testing.T, k *harness.Keelson, group, id string) {
	t.Helper()
	ctx := harness.Ctx(t)
	cl := k.ContainerdClient(t)
	cc, err := cl.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cc.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := cl.SnapshotService(info.Snapshotter).Mounts(ctx, info.SnapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(k.Dir, "stray-bundle", id)
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bundle)) })
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	req := &taskv3.CreateTaskRequest{ID: id, Bundle: bundle, Rootfs: mount.ToProto(mounts)}
	var errs []error
	for _, sh := range runtime.Shims(harness.Namespace, k.ContainerdSocket) {
		if sh.ID != group {
			continue
		}
		for _, path := range runtime.TaskSockets(k.ContainerdSocket, harness.Namespace, sh) {
			conn, err := net.Dial("unix", path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			client := ttrpc.NewClient(conn)
			_, err = taskv3.NewTTRPCTaskClient(client).Create(ctx, req)
			client.Close()
			if err == nil {
				return
			}
			errs = append(errs, err)
		}
	}
	t.Fatalf("the pod's shim did not create the task: %v", errs)
}
