package oci

import (
	"context"

	"github.com/containerd/containerd/v2/core/containers"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdateResources replaces the resources of a container's spec with r (kubelet sends
// the complete set), keeping the device rules. The oom_score_adj is clamped as at
// creation.
func UpdateResources(ctx context.Context, spec *specs.Spec, r *runtimeapi.LinuxContainerResources, pidsLimit int64, ownOOM int) error {
	opts, err := containerResources(r, pidsLimit)
	if err != nil {
		return err
	}
	old := ensureResources(spec)
	spec.Linux.Resources = &specs.LinuxResources{Devices: old.Devices, Pids: old.Pids}
	for _, o := range opts {
		if err := o(ctx, nil, &containers.Container{}, spec); err != nil {
			return err
		}
	}
	if r != nil && spec.Process != nil {
		adj := ClampOOMScoreAdj(int(r.GetOomScoreAdj()), ownOOM)
		spec.Process.OOMScoreAdj = &adj
	}
	return nil
}
