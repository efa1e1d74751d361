package integration

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// recvAll reads a server stream to its end and counts what f counts per message.
func recvAll[R any](t *testing.T, s grpc.ServerStreamingClient[R], err error, f func(*R) int) int {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n += f(m)
	}
}

// TestNewerRPCs: the KEP-5825 Stream* calls answer what their List calls answer;
// UpdatePodSandboxResources (in-place pod resize) resizes the pod's cgroup and is
// reported in its verbose status; unknown pods and invalid resources are refused.
func TestNewerRPCs(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "streams")
	p.run(t, ctrConfig("a", images.Busybox, "sleep", "1000"))
	p.run(t, ctrConfig("b", images.Busybox, "sleep", "1000"))
	rt, is := k.Runtime, k.Images

	pods, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := rt.StreamPodSandboxes(ctx, &runtimeapi.StreamPodSandboxesRequest{})
	if n := recvAll(t, s1, err, func(m *runtimeapi.StreamPodSandboxesResponse) int { return len(m.PodSandboxes) }); n != len(pods.Items) || n != 1 {
		t.Errorf("StreamPodSandboxes: %d pods, List: %d", n, len(pods.Items))
	}
	s2, err := rt.StreamContainers(ctx, &runtimeapi.StreamContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: p.id}})
	if n := recvAll(t, s2, err, func(m *runtimeapi.StreamContainersResponse) int { return len(m.Containers) }); n != 2 {
		t.Errorf("StreamContainers: %d containers, want 2", n)
	}
	s3, err := rt.StreamContainerStats(ctx, &runtimeapi.StreamContainerStatsRequest{})
	if n := recvAll(t, s3, err, func(m *runtimeapi.StreamContainerStatsResponse) int { return len(m.ContainerStats) }); n != 2 {
		t.Errorf("StreamContainerStats: %d, want 2", n)
	}
	s4, err := rt.StreamPodSandboxStats(ctx, &runtimeapi.StreamPodSandboxStatsRequest{})
	if n := recvAll(t, s4, err, func(m *runtimeapi.StreamPodSandboxStatsResponse) int { return len(m.PodSandboxStats) }); n != 1 {
		t.Errorf("StreamPodSandboxStats: %d, want 1", n)
	}
	imgs, err := is.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s5, err := is.StreamImages(ctx, &runtimeapi.StreamImagesRequest{})
	if n := recvAll(t, s5, err, func(m *runtimeapi.StreamImagesResponse) int { return len(m.Images) }); n != len(imgs.Images) {
		t.Errorf("StreamImages: %d, List: %d", n, len(imgs.Images))
	}

	res := &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, MemoryLimitInBytes: 128 << 20}
	over := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20}
	if _, err := rt.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: p.id, Resources: res, Overhead: over}); err != nil {
		t.Errorf("UpdatePodSandboxResources: %v", err)
	}
	// The pod's cgroup (its parent) is resized to resources plus overhead, and the
	// values are reported.
	for file, want := range map[string]string{"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "memory/memory.limit_in_bytes": "135266304"} {
		controller, name := filepath.Split(file)
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, k.CgroupParent, name))
		if got := strings.TrimSpace(string(b)); err != nil || got != want {
			t.Errorf("pod cgroup %s = %q (%v), want %s", file, got, err, want)
		}
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if info := st.Info["info"]; !strings.Contains(info, `"resources":{"cpu_period":100000,"cpu_quota":50000,"memory_limit_in_bytes":134217728`) ||
		!strings.Contains(info, `"overhead":{"memory_limit_in_bytes":1048576`) {
		t.Errorf("verbose status does not report the new resources: %s", info)
	}
	if _, err := rt.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: "nope", Resources: res}); status.Code(err) != codes.NotFound {
		t.Errorf("UpdatePodSandboxResources of an unknown pod: %v", err)
	}
	bad := &runtimeapi.LinuxContainerResources{CpuQuota: -5}
	if _, err := rt.UpdatePodSandboxResources(ctx, &runtimeapi.UpdatePodSandboxResourcesRequest{PodSandboxId: p.id, Resources: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("UpdatePodSandboxResources with a negative quota: %v", err)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
