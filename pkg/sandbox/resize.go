package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/nri"
	"github.com/keelson/keelson/pkg/validate"
)

// UpdateResources takes a pod's new resources after an in-place resize: it sets the
// pod's cgroup (its cgroup parent) to resources plus overhead, as kubelet sizes it,
// and records both for PodSandboxStatus. kubelet has usually resized that cgroup
// already; writing the same values again is harmless, and a pod whose cgroup is
// not there (no parent, or none made yet) only has them recorded.
func (s *Service) UpdateResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error {
	if err := validate.Resources("overhead", overhead, s.opts.Host); err != nil {
		return err
	}
	if err := validate.Resources("resources", resources, s.opts.Host); err != nil {
		return err
	}
	sb, err := s.Get(id)
	if err != nil {
		return err
	}
	release, err := sb.Hold()
	if err != nil {
		return fmt.Errorf("resizing pod sandbox %s: %w", id, err)
	}
	defer release()
	if s.opts.NRI != nil {
		if err := s.opts.NRI.UpdatePodSandbox(ctx, sb.NRIPod(), overhead, resources); err != nil {
			return err
		}
	}
	dir := cgroups.ParentDir(s.opts.Host.CgroupDriver, sb.Config.GetLinux().GetCgroupParent())
	applied, err := s.opts.Resize(dir, podLimits(resources, overhead))
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("%w (the pod uses more memory than the new limit): %w", err, errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("resizing the cgroup of pod sandbox %s: %w", id, err)
	}
	res, _ := proto.Marshal(resources)
	over, _ := proto.Marshal(overhead)
	if err := sb.status.Update(func(st *Status) bool {
		st.Resources, st.Overhead = res, over
		return true
	}); err != nil {
		return fmt.Errorf("recording the resources of pod sandbox %s: %w", id, err)
	}
	if s.opts.NRI != nil {
		s.opts.NRI.PostUpdatePodSandbox(ctx, sb.NRIPod())
	}
	klog.V(2).InfoS("Pod sandbox resized", "podSandboxID", sb.ID, "cgroup", dir, "applied", applied, "resources", resources, "overhead", overhead)
	return nil
}

// podLimits are a pod cgroup's limits for its resources plus its overhead (kubelet's
// sum); an unlimited quota or memory stays unlimited.
func podLimits(resources, overhead *runtimeapi.LinuxContainerResources) cgroups.Limits {
	l := cgroups.Limits{
		CPUShares:   uint64(max(resources.GetCpuShares(), 0)),
		CPUQuota:    resources.GetCpuQuota(),
		CPUPeriod:   uint64(max(resources.GetCpuPeriod(), 0)),
		MemoryLimit: resources.GetMemoryLimitInBytes(),
	}
	if l.CPUShares > 0 {
		l.CPUShares += uint64(max(overhead.GetCpuShares(), 0))
	}
	if l.CPUQuota > 0 && overhead.GetCpuQuota() > 0 {
		l.CPUQuota += overhead.GetCpuQuota()
	}
	if l.MemoryLimit > 0 && overhead.GetMemoryLimitInBytes() > 0 {
		l.MemoryLimit += overhead.GetMemoryLimitInBytes()
	}
	return l
}

// Resources are the pod's resources and overhead: as last resized, else as created.
func (sb *Sandbox) Resources() (resources, overhead *runtimeapi.LinuxContainerResources) {
	st := sb.Status()
	if st.Resources == nil && st.Overhead == nil {
		return sb.Config.GetLinux().GetResources(), sb.Config.GetLinux().GetOverhead()
	}
	resources, overhead = &runtimeapi.LinuxContainerResources{}, &runtimeapi.LinuxContainerResources{}
	if proto.Unmarshal(st.Resources, resources) != nil {
		resources = nil
	}
	if proto.Unmarshal(st.Overhead, overhead) != nil {
		overhead = nil
	}
	return resources, overhead
}

// NRIPod is the pod as NRI plugins see it.
func (sb *Sandbox) NRIPod() *api.PodSandbox {
	var spec *specs.Spec
	if b := sb.Spec(); len(b) > 0 {
		_ = json.Unmarshal(b, &spec)
	}
	res, over := sb.Resources()
	return nri.Pod(sb.Config, nri.PodFacts{
		ID: sb.ID, RuntimeHandler: sb.RuntimeHandler, Pid: sb.Status().Pid, IPs: sb.IPs,
		Spec: spec, Resources: res, Overhead: over,
	})
}
