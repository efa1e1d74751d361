package nri

import (
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodFacts are what a plugin is told of a pod besides its CRI config.
type PodFacts struct {
	ID, RuntimeHandler string
	Pid                uint32 // the pause process (0: none)
	IPs                []string
	Spec               *specs.Spec // the infra container's spec, for its namespaces and cgroups path (may be nil)
	// Resources and Overhead: the pod's current ones (sandbox.Resources: as last
	// resized, else as created).
	Resources, Overhead *runtimeapi.LinuxContainerResources
}

// Pod is a pod as plugins see it.
func Pod(cfg *runtimeapi.PodSandboxConfig, f PodFacts) *api.PodSandbox {
	md := cfg.GetMetadata()
	lx := cfg.GetLinux()
	pod := &api.PodSandbox{
		Id: f.ID, Name: md.GetName(), Uid: md.GetUid(), Namespace: md.GetNamespace(),
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(), RuntimeHandler: f.RuntimeHandler,
		Pid: f.Pid, Ips: f.IPs,
		Linux: &api.LinuxPodSandbox{
			CgroupParent: lx.GetCgroupParent(),
			PodResources: FromCRIResources(f.Resources),
			PodOverhead:  FromCRIResources(f.Overhead),
		},
	}
	if s := f.Spec; s != nil && s.Linux != nil {
		pod.Linux.CgroupsPath = s.Linux.CgroupsPath
		pod.Linux.Namespaces = api.FromOCILinuxNamespaces(s.Linux.Namespaces)
		pod.Linux.Resources = api.FromOCILinuxResources(s.Linux.Resources, nil)
	}
	return pod
}

// ContainerFacts are what a plugin is told of a container besides its CRI config
// and OCI spec.
type ContainerFacts struct {
	ID, PodID  string
	State      api.ContainerState
	Pid        uint32
	CreatedAt  int64 // unix nanoseconds
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
}

// Container is a container as plugins see it: what its OCI spec says (the spec
// keelson built from the CRI config, or the one it runs with).
func Container(cfg *runtimeapi.ContainerConfig, spec *specs.Spec, f ContainerFacts) *api.Container {
	c := &api.Container{
		Id: f.ID, PodSandboxId: f.PodID, Name: cfg.GetMetadata().GetName(), State: f.State,
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		Pid: f.Pid, CreatedAt: f.CreatedAt, StartedAt: f.StartedAt, FinishedAt: f.FinishedAt,
		ExitCode: f.ExitCode, StatusReason: f.Reason, StatusMessage: f.Message,
	}
	for _, d := range cfg.GetCDIDevices() {
		c.CDIDevices = append(c.CDIDevices, &api.CDIDevice{Name: d.GetName()})
	}
	if spec == nil {
		return c
	}
	if p := spec.Process; p != nil {
		c.Args, c.Env = p.Args, p.Env
		c.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: p.User.AdditionalGids}
		for _, r := range p.Rlimits {
			c.Rlimits = append(c.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
	}
	c.Mounts = api.FromOCIMounts(spec.Mounts)
	c.Hooks = api.FromOCIHooks(spec.Hooks)
	if lx := spec.Linux; lx != nil {
		c.Linux = &api.LinuxContainer{
			Namespaces:  api.FromOCILinuxNamespaces(lx.Namespaces),
			Devices:     api.FromOCILinuxDevices(lx.Devices),
			Resources:   api.FromOCILinuxResources(lx.Resources, spec.Annotations),
			CgroupsPath: lx.CgroupsPath,
			Sysctl:      lx.Sysctl,
		}
		if p := spec.Process; p != nil {
			if p.OOMScoreAdj != nil {
				c.Linux.OomScoreAdj = api.Int(*p.OOMScoreAdj)
			}
			c.Linux.IoPriority = api.FromOCILinuxIOPriority(p.IOPriority)
			c.Linux.Scheduler = api.FromOCILinuxScheduler(p.Scheduler)
		}
		if lx.Seccomp != nil {
			c.Linux.SeccompPolicy = api.FromOCILinuxSeccomp(lx.Seccomp)
		}
	}
	return c
}

// FromCRIResources is a CRI resource set in NRI's terms (nil for nil). CRI's zero
// values mean "not set" and are left out.
func FromCRIResources(r *runtimeapi.LinuxContainerResources) *api.LinuxResources {
	if r == nil {
		return nil
	}
	out := &api.LinuxResources{
		Cpu:     &api.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()},
		Memory:  &api.LinuxMemory{},
		Unified: r.GetUnified(),
	}
	if v := r.GetCpuShares(); v > 0 {
		out.Cpu.Shares = api.UInt64(uint64(v))
	}
	if v := r.GetCpuQuota(); v != 0 {
		out.Cpu.Quota = api.Int64(v)
	}
	if v := r.GetCpuPeriod(); v > 0 {
		out.Cpu.Period = api.UInt64(uint64(v))
	}
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		out.Memory.Limit = api.Int64(v)
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		out.Memory.Swap = api.Int64(v)
	}
	for _, h := range r.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &api.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}

// MergeResources is r with what an NRI update sets.
func MergeResources(r *runtimeapi.LinuxContainerResources, u *api.LinuxResources) *runtimeapi.LinuxContainerResources {
	out := &runtimeapi.LinuxContainerResources{}
	if r != nil {
		out = proto.Clone(r).(*runtimeapi.LinuxContainerResources)
	}
	if u == nil {
		return out
	}
	if c := u.GetCpu(); c != nil {
		if c.GetShares() != nil {
			out.CpuShares = int64(c.GetShares().GetValue())
		}
		if c.GetQuota() != nil {
			out.CpuQuota = c.GetQuota().GetValue()
		}
		if c.GetPeriod() != nil {
			out.CpuPeriod = int64(c.GetPeriod().GetValue())
		}
		if c.GetCpus() != "" {
			out.CpusetCpus = c.GetCpus()
		}
		if c.GetMems() != "" {
			out.CpusetMems = c.GetMems()
		}
	}
	if m := u.GetMemory(); m != nil {
		if m.GetLimit() != nil {
			out.MemoryLimitInBytes = m.GetLimit().GetValue()
		}
		if m.GetSwap() != nil {
			out.MemorySwapLimitInBytes = m.GetSwap().GetValue()
		}
	}
	for _, h := range u.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &runtimeapi.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	for k, v := range u.GetUnified() {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		out.Unified[k] = v
	}
	return out
}
