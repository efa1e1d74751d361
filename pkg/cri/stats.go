package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/sandbox"
	"github.com/keelson/keelson/pkg/stats"
)

// StatsService is what the stats RPCs need of pkg/stats: the cached samples, and one
// on-demand sample of objects never sampled yet.
type StatsService interface {
	Container(id string) (stats.ContainerStats, bool)
	Pod(id string) (stats.PodStats, bool)
	Ensure(ctx context.Context, ids ...string)
}

func (s *Server) stats() (StatsService, error) {
	if s.Stats == nil {
		return nil, fmt.Errorf("stats are not collected by this server: %w", errdefs.ErrNotImplemented)
	}
	return s.Stats, nil
}

func u64(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

func containerAttributes(c *container.Container) *runtimeapi.ContainerAttributes {
	return &runtimeapi.ContainerAttributes{
		Id:          c.ID,
		Metadata:    containerMetadata(c),
		Labels:      c.Config.GetLabels(),
		Annotations: c.Config.GetAnnotations(),
	}
}

func toCRIContainerStats(c *container.Container, st stats.ContainerStats) *runtimeapi.ContainerStats {
	out := &runtimeapi.ContainerStats{
		Attributes: containerAttributes(c),
		Cpu:        toCRICPU(st.CPU),
		Memory:     toCRIMemory(st.Memory),
	}
	if p := st.IOPressure; p != nil && st.CPU != nil {
		out.Io = &runtimeapi.IoUsage{Timestamp: st.CPU.Timestamp.UnixNano(), Psi: toCRIPSI(p)}
	}
	if m := st.Memory; m != nil {
		out.Swap = &runtimeapi.SwapUsage{Timestamp: m.Timestamp.UnixNano(), SwapUsageBytes: u64(m.SwapBytes)}
		if m.SwapLimitBytes > 0 {
			out.Swap.SwapAvailableBytes = u64(m.SwapLimitBytes - min(m.SwapBytes, m.SwapLimitBytes))
		}
	}
	if fs := st.WritableLayer; fs != nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{
			Timestamp:  fs.Timestamp.UnixNano(),
			FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: fs.Mountpoint},
			UsedBytes:  u64(fs.UsedBytes),
			InodesUsed: u64(fs.InodesUsed),
		}
	}
	return out
}

func toCRICPU(c *stats.CPU) *runtimeapi.CpuUsage {
	if c == nil {
		return nil
	}
	out := &runtimeapi.CpuUsage{Timestamp: c.Timestamp.UnixNano(), UsageCoreNanoSeconds: u64(c.UsageCoreNanoSeconds)}
	if c.RateKnown {
		out.UsageNanoCores = u64(c.UsageNanoCores)
	}
	out.Psi = toCRIPSI(c.Pressure)
	return out
}

// toCRIPSI converts pressure stall information; CRI's Total is in nanoseconds.
func toCRIPSI(p *stats.Pressure) *runtimeapi.PsiStats {
	if p == nil {
		return nil
	}
	data := func(d stats.PressureData) *runtimeapi.PsiData {
		return &runtimeapi.PsiData{Total: d.Total * 1000, Avg10: d.Avg10, Avg60: d.Avg60, Avg300: d.Avg300}
	}
	return &runtimeapi.PsiStats{Full: data(p.Full), Some: data(p.Some)}
}

func toCRIMemory(m *stats.Memory) *runtimeapi.MemoryUsage {
	if m == nil {
		return nil
	}
	out := &runtimeapi.MemoryUsage{
		Timestamp:       m.Timestamp.UnixNano(),
		WorkingSetBytes: u64(m.WorkingSetBytes),
		UsageBytes:      u64(m.UsageBytes),
		RssBytes:        u64(m.RSSBytes),
		PageFaults:      u64(m.PageFaults),
		MajorPageFaults: u64(m.MajorPageFaults),
	}
	if avail, ok := m.AvailableBytes(); ok {
		out.AvailableBytes = u64(avail)
	}
	out.Psi = toCRIPSI(m.Pressure)
	return out
}

func sandboxAttributes(sb *sandbox.Sandbox) *runtimeapi.PodSandboxAttributes {
	return &runtimeapi.PodSandboxAttributes{
		Id:          sb.ID,
		Metadata:    sandboxMetadata(sb),
		Labels:      sb.Config.GetLabels(),
		Annotations: sb.Config.GetAnnotations(),
	}
}

// toCRIPodStats converts a pod's sample; containers are the pod's containers' stats.
func toCRIPodStats(sb *sandbox.Sandbox, st stats.PodStats, containers []*runtimeapi.ContainerStats) *runtimeapi.PodSandboxStats {
	linux := &runtimeapi.LinuxPodSandboxStats{
		Cpu:        toCRICPU(st.CPU),
		Memory:     toCRIMemory(st.Memory),
		Containers: containers,
	}
	if p := st.Process; p != nil {
		linux.Process = &runtimeapi.ProcessUsage{Timestamp: p.Timestamp.UnixNano(), ProcessCount: u64(p.Count)}
	}
	if n := st.Network; n != nil {
		linux.Network = &runtimeapi.NetworkUsage{Timestamp: n.Timestamp.UnixNano()}
		def := n.Default()
		for i := range n.Interfaces {
			in := &n.Interfaces[i]
			iu := &runtimeapi.NetworkInterfaceUsage{
				Name: in.Name, RxBytes: u64(in.RxBytes), RxErrors: u64(in.RxErrors), TxBytes: u64(in.TxBytes), TxErrors: u64(in.TxErrors),
			}
			linux.Network.Interfaces = append(linux.Network.Interfaces, iu)
			if in == def {
				linux.Network.DefaultInterface = iu
			}
		}
	}
	return &runtimeapi.PodSandboxStats{Attributes: sandboxAttributes(sb), Linux: linux}
}

// podContainerStats groups the stats of every container by pod (cache reads only).
func podContainerStats(st StatsService, all []*container.Container, want func(sandboxID string) bool) map[string][]*runtimeapi.ContainerStats {
	out := map[string][]*runtimeapi.ContainerStats{}
	for _, c := range all {
		if !want(c.SandboxID) {
			continue
		}
		cs, _ := st.Container(c.ID)
		out[c.SandboxID] = append(out[c.SandboxID], toCRIContainerStats(c, cs))
	}
	return out
}
