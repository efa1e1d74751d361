// Package stats samples the resource usage of every container and pod sandbox in the
// background, so that the CRI stats RPCs answer from memory.
//
// Every Interval the cgroup metrics of every task are read from its cgroup files,
// which keelson keeps open (see cgroupfiles.go); tasks with no cgroup on this host are
// asked of containerd (TaskService.Metrics) in one call. They are decoded (cgroup v1 or
// v2), turned into usage figures (CPU rate from the delta of two samples, memory
// working set as kubelet and cAdvisor define it) and cached. Pod network counters come
// from /proc/<infra pid>/net/dev; writable-layer usage from the snapshotter, less
// often (it walks the upper directory). Pod CPU and memory are the sums over the pod's
// tasks (the infra task included); the CPU time of containers that have exited stays
// in the pod's total so it never goes backwards.
package stats

import (
	"strings"
	"time"
)

// CPU is cumulative CPU time and the rate over the last sampling window.
type CPU struct {
	Timestamp time.Time
	// UsageCoreNanoSeconds is the CPU time consumed since the start, on all cores.
	UsageCoreNanoSeconds uint64
	UserNanoSeconds      uint64
	SystemNanoSeconds    uint64
	// UsageNanoCores is the CPU rate over the last window, in nanocores (1e9 = one core
	// busy); valid only when RateKnown (it takes two samples).
	UsageNanoCores uint64
	RateKnown      bool
	// CFS bandwidth throttling.
	Periods              uint64
	ThrottledPeriods     uint64
	ThrottledNanoSeconds uint64
	// Pressure is the cgroup's cpu.pressure (cgroup v2 with PSI); nil when unknown.
	Pressure *Pressure
}

// Pressure is a cgroup's pressure stall information for one resource: the share of
// time some (or all) of its tasks were stalled waiting for it.
type Pressure struct {
	Some, Full PressureData
}

// PressureData is one line of a *.pressure file.
type PressureData struct {
	Total                uint64  // stalled time, microseconds, since the cgroup was made
	Avg10, Avg60, Avg300 float64 // percentages over 10 s, 60 s, 300 s
}

// Memory is a memory cgroup's usage.
type Memory struct {
	Timestamp  time.Time
	UsageBytes uint64
	// WorkingSetBytes is usage minus inactive file pages (what kubelet evicts on).
	WorkingSetBytes   uint64
	RSSBytes          uint64
	CacheBytes        uint64
	MappedFileBytes   uint64
	ActiveFileBytes   uint64
	InactiveFileBytes uint64
	KernelBytes       uint64
	SwapBytes         uint64
	MaxUsageBytes     uint64
	Failcnt           uint64
	PageFaults        uint64
	MajorPageFaults   uint64
	OOMKills          uint64
	// LimitBytes is the memory limit; 0 when there is none.
	LimitBytes uint64
	// SwapLimitBytes is the swap limit (cgroup v2); 0 when there is none or unknown.
	SwapLimitBytes uint64
	// Pressure is the cgroup's memory.pressure (cgroup v2 with PSI); nil when unknown.
	Pressure *Pressure
}

// AvailableBytes is the limit minus the working set, if a limit is set.
func (m *Memory) AvailableBytes() (uint64, bool) {
	if m.LimitBytes == 0 {
		return 0, false
	}
	if m.WorkingSetBytes >= m.LimitBytes {
		return 0, true
	}
	return m.LimitBytes - m.WorkingSetBytes, true
}

// Process counts the tasks (processes and threads) of a cgroup.
type Process struct {
	Timestamp time.Time
	Count     uint64
	Limit     uint64 // 0: no limit
}

// DiskIO is one block device's cumulative I/O.
type DiskIO struct {
	Device     string // name, or major:minor when the name is unknown
	ReadBytes  uint64
	WriteBytes uint64
	Reads      uint64
	Writes     uint64
}

// Filesystem is a writable layer's usage on the snapshotter's filesystem.
type Filesystem struct {
	Timestamp  time.Time
	Mountpoint string // the snapshotter's root
	UsedBytes  uint64
	InodesUsed uint64
}

// Interface is one network interface's cumulative counters.
type Interface struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// Network is the pod's interfaces other than lo.
type Network struct {
	Timestamp  time.Time
	Interfaces []Interface
}

// Default is eth0, else the first interface (nil when there is none).
func (n *Network) Default() *Interface {
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == "eth0" {
			return &n.Interfaces[i]
		}
	}
	if len(n.Interfaces) > 0 {
		return &n.Interfaces[0]
	}
	return nil
}

// ContainerStats is a container's last sample. Nil parts were not sampled (yet):
// CPU, Memory and Process exist while the task runs; WritableLayer once measured.
type ContainerStats struct {
	ID        string
	SandboxID string
	CPU       *CPU
	Memory    *Memory
	Process   *Process
	DiskIO    []DiskIO
	// IOPressure is the cgroup's io.pressure (cgroup v2 with PSI); nil when unknown.
	IOPressure    *Pressure
	WritableLayer *Filesystem
}

// PodStats is a pod sandbox's last sample: sums over its tasks, and its network.
type PodStats struct {
	ID      string
	CPU     *CPU
	Memory  *Memory
	Process *Process
	Network *Network // nil for host-network pods
}

// Filter selects containers or pods; empty fields match everything. IDs match by
// prefix, as in the CRI list calls; Labels must all be present with equal values.
type Filter struct {
	ID        string
	SandboxID string
	Labels    map[string]string
}

// Match reports whether an object with this ID, sandbox ID and labels passes.
func (f Filter) Match(id, sandboxID string, labels map[string]string) bool {
	if !strings.HasPrefix(id, f.ID) || !strings.HasPrefix(sandboxID, f.SandboxID) {
		return false
	}
	for k, v := range f.Labels {
		if have, ok := labels[k]; !ok || have != v {
			return false
		}
	}
	return true
}

// clone copies the parts a caller could modify; slices are replaced, never changed,
// by the collector, so they are shared.
func (s ContainerStats) clone() ContainerStats {
	out := s
	if s.CPU != nil {
		c := *s.CPU
		out.CPU = &c
	}
	if s.Memory != nil {
		m := *s.Memory
		out.Memory = &m
	}
	if s.Process != nil {
		p := *s.Process
		out.Process = &p
	}
	if s.WritableLayer != nil {
		w := *s.WritableLayer
		out.WritableLayer = &w
	}
	return out
}

func (s PodStats) clone() PodStats {
	out := s
	if s.CPU != nil {
		c := *s.CPU
		out.CPU = &c
	}
	if s.Memory != nil {
		m := *s.Memory
		out.Memory = &m
	}
	if s.Process != nil {
		p := *s.Process
		out.Process = &p
	}
	return out
}
