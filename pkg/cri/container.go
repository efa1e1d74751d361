package cri

import (
	"context"
	"encoding/json"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/container"
)

// ContainerService is what the container RPCs need of pkg/container.
type ContainerService interface {
	Create(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig) (string, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id string) error
	Get(id string) (*container.Container, error)
	List() []*container.Container
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*container.ExecResult, error)
	UpdateResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error
	ReopenLog(ctx context.Context, id string) error
}

var containerStates = map[container.State]runtimeapi.ContainerState{
	container.StateCreated: runtimeapi.ContainerState_CONTAINER_CREATED,
	container.StateRunning: runtimeapi.ContainerState_CONTAINER_RUNNING,
	container.StateExited:  runtimeapi.ContainerState_CONTAINER_EXITED,
	container.StateUnknown: runtimeapi.ContainerState_CONTAINER_UNKNOWN,
}

func containerState(c *container.Container) runtimeapi.ContainerState {
	return containerStates[c.Status().State]
}

func containerMetadata(c *container.Container) *runtimeapi.ContainerMetadata {
	if md := c.Config.GetMetadata(); md != nil {
		return md
	}
	return &runtimeapi.ContainerMetadata{Name: c.ID}
}

func toCRIContainer(c *container.Container) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:           c.ID,
		PodSandboxId: c.SandboxID,
		Metadata:     containerMetadata(c),
		Image:        &runtimeapi.ImageSpec{Image: c.ImageName},
		ImageRef:     c.ImageRef,
		ImageId:      c.ImageID,
		State:        containerState(c),
		CreatedAt:    c.CreatedAt,
		Labels:       c.Config.GetLabels(),
		Annotations:  c.Config.GetAnnotations(),
	}
}

func toCRIContainerStatus(c *container.Container) *runtimeapi.ContainerStatus {
	st := c.Status()
	out := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    containerMetadata(c),
		State:       containerStates[st.State],
		CreatedAt:   c.CreatedAt,
		StartedAt:   st.StartedAt,
		FinishedAt:  st.FinishedAt,
		ExitCode:    st.ExitCode,
		Image:       &runtimeapi.ImageSpec{Image: c.ImageName},
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      st.Reason,
		Message:     st.Message,
		Labels:      c.Config.GetLabels(),
		Annotations: c.Config.GetAnnotations(),
		Mounts:      c.Config.GetMounts(),
		LogPath:     c.LogPath,
		Resources:   &runtimeapi.ContainerResources{Linux: c.Resources()},
		StopSignal:  c.CRIStopSignal(),
	}
	if u := c.User(); u != nil {
		out.User = &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: int64(u.UID), Gid: int64(u.GID), SupplementalGroups: toInt64s(u.AdditionalGids),
		}}
	}
	return out
}

func toInt64s(in []uint32) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

func containerVerboseInfo(c *container.Container) map[string]string {
	st := c.Status()
	info := map[string]any{
		"sandboxID": c.SandboxID,
		"pid":       st.Pid,
		"name":      c.Name,
		"imageID":   c.ImageID,
		"config":    c.Config,
	}
	if spec := c.Spec(); len(spec) > 0 {
		info["runtimeSpec"] = json.RawMessage(spec)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil
	}
	return map[string]string{"info": string(b)}
}
