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
	keepSwapAllowance(old.Memory, spec.Linux.Resources.Memory)
	if r != nil && spec.Process != nil {
		adj := ClampOOMScoreAdj(int(r.GetOomScoreAdj()), ownOOM)
		spec.Process.OOMScoreAdj = &adj
	}
	return nil
}

// keepSwapAllowance: a new memory limit without a swap limit, where the container
// had both (an NRI plugin, or the create request, set them), keeps the swap it was
// allowed on top of memory — the kernel refuses a memory limit above memory+swap.
func keepSwapAllowance(old, cur *specs.LinuxMemory) {
	if old == nil || cur == nil || cur.Limit == nil || cur.Swap != nil ||
		old.Limit == nil || old.Swap == nil || *old.Swap < *old.Limit {
		return
	}
	swap := *cur.Limit + (*old.Swap - *old.Limit)
	cur.Swap = &swap
}
