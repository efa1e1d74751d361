package stats

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
)

// taskSample is one task's decoded metrics.
type taskSample struct {
	cpu   *CPU
	mem   *Memory
	proc  *Process
	io    []DiskIO
	ioPSI *Pressure
}

// decodeMetric turns a task metric from containerd into a sample. The data is the
// shim's cgroup metrics: io.containerd.cgroups.v1.Metrics or .v2.Metrics (the same
// type URLs for containerd 1.6 and 2.x shims).
func decodeMetric(m *types.Metric) (taskSample, error) {
	if m.GetData() == nil {
		return taskSample{}, errors.New("metric has no data")
	}
	at := time.Now()
	if ts := m.GetTimestamp(); ts != nil && ts.IsValid() {
		at = ts.AsTime()
	}
	v, err := typeurl.UnmarshalAny(m.GetData())
	if err != nil {
		return taskSample{}, fmt.Errorf("decoding %s: %w", m.GetData().GetTypeUrl(), err)
	}
	switch v := v.(type) {
	case *cg1.Metrics:
		return fromV1(v, at), nil
	case *cg2.Metrics:
		return fromV2(v, at), nil
	default:
		return taskSample{}, fmt.Errorf("unexpected metrics type %T (%s)", v, m.GetData().GetTypeUrl())
	}
}

// unlimited: the kernel reports "no limit" as a huge, page-rounded number.
func unlimited(v uint64) bool { return v == 0 || v > 1<<62 }

func limitOrZero(v uint64) uint64 {
	if unlimited(v) {
		return 0
	}
	return v
}

// workingSet is usage minus inactive file pages, floored at zero: kubelet's and
// cAdvisor's definition (v1 uses total_inactive_file, v2 inactive_file).
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

func fromV1(m *cg1.Metrics, at time.Time) taskSample {
	var s taskSample
	if u := m.GetCPU().GetUsage(); u != nil {
		s.cpu = &CPU{Timestamp: at, UsageCoreNanoSeconds: u.Total, UserNanoSeconds: u.User, SystemNanoSeconds: u.Kernel}
		if t := m.GetCPU().GetThrottling(); t != nil {
			s.cpu.Periods, s.cpu.ThrottledPeriods, s.cpu.ThrottledNanoSeconds = t.Periods, t.ThrottledPeriods, t.ThrottledTime
		}
	}
	if mem := m.GetMemory(); mem != nil && mem.GetUsage() != nil {
		usage := mem.Usage.Usage
		s.mem = &Memory{
			Timestamp:         at,
			UsageBytes:        usage,
			WorkingSetBytes:   workingSet(usage, mem.TotalInactiveFile),
			RSSBytes:          mem.TotalRSS,
			CacheBytes:        mem.TotalCache,
			MappedFileBytes:   mem.TotalMappedFile,
			ActiveFileBytes:   mem.TotalActiveFile,
			InactiveFileBytes: mem.TotalInactiveFile,
			KernelBytes:       mem.GetKernel().GetUsage(),
			MaxUsageBytes:     mem.Usage.Max,
			Failcnt:           mem.Usage.Failcnt,
			PageFaults:        mem.TotalPgFault,
			MajorPageFaults:   mem.TotalPgMajFault,
			OOMKills:          m.GetMemoryOomControl().GetOomKill(),
			LimitBytes:        limitOrZero(mem.Usage.Limit),
		}
		// v1 accounts memory+swap together (memsw).
		if sw := mem.GetSwap().GetUsage(); sw > usage {
			s.mem.SwapBytes = sw - usage
		}
	}
	if p := m.GetPids(); p != nil {
		s.proc = &Process{Timestamp: at, Count: p.Current, Limit: limitOrZero(p.Limit)}
	}
	if b := m.GetBlkio(); b != nil {
		io := map[[2]uint64]*DiskIO{}
		var order [][2]uint64
		get := func(e *cg1.BlkIOEntry) *DiskIO {
			k := [2]uint64{e.Major, e.Minor}
			d, ok := io[k]
			if !ok {
				d = &DiskIO{Device: e.Device}
				if d.Device == "" {
					d.Device = fmt.Sprintf("%d:%d", e.Major, e.Minor)
				}
				io[k] = d
				order = append(order, k)
			}
			return d
		}
		for _, e := range b.IoServiceBytesRecursive {
			switch e.Op {
			case "Read", "read":
				get(e).ReadBytes += e.Value
			case "Write", "write":
				get(e).WriteBytes += e.Value
			}
		}
		for _, e := range b.IoServicedRecursive {
			switch e.Op {
			case "Read", "read":
				get(e).Reads += e.Value
			case "Write", "write":
				get(e).Writes += e.Value
			}
		}
		for _, k := range order {
			s.io = append(s.io, *io[k])
		}
	}
	return s
}

func fromV2(m *cg2.Metrics, at time.Time) taskSample {
	var s taskSample
	if c := m.GetCPU(); c != nil {
		s.cpu = &CPU{
			Timestamp:            at,
			UsageCoreNanoSeconds: c.UsageUsec * 1000,
			UserNanoSeconds:      c.UserUsec * 1000,
			SystemNanoSeconds:    c.SystemUsec * 1000,
			Periods:              c.NrPeriods,
			ThrottledPeriods:     c.NrThrottled,
			ThrottledNanoSeconds: c.ThrottledUsec * 1000,
			Pressure:             pressure(c.GetPSI()),
		}
	}
	if mem := m.GetMemory(); mem != nil {
		s.mem = &Memory{
			Timestamp:         at,
			UsageBytes:        mem.Usage,
			WorkingSetBytes:   workingSet(mem.Usage, mem.InactiveFile),
			RSSBytes:          mem.Anon, // as cAdvisor on cgroup v2
			CacheBytes:        mem.File,
			MappedFileBytes:   mem.FileMapped,
			ActiveFileBytes:   mem.ActiveFile,
			InactiveFileBytes: mem.InactiveFile,
			KernelBytes:       mem.KernelStack + mem.Slab,
			SwapBytes:         mem.SwapUsage,
			MaxUsageBytes:     mem.MaxUsage,
			PageFaults:        mem.Pgfault,
			MajorPageFaults:   mem.Pgmajfault,
			OOMKills:          m.GetMemoryEvents().GetOomKill(),
			LimitBytes:        limitOrZero(mem.UsageLimit),
			SwapLimitBytes:    limitOrZero(mem.SwapLimit),
			Pressure:          pressure(mem.GetPSI()),
		}
	}
	s.ioPSI = pressure(m.GetIo().GetPSI())
	if p := m.GetPids(); p != nil {
		s.proc = &Process{Timestamp: at, Count: p.Current, Limit: limitOrZero(p.Limit)}
	}
	for _, e := range m.GetIo().GetUsage() {
		s.io = append(s.io, DiskIO{
			Device:    fmt.Sprintf("%d:%d", e.Major, e.Minor),
			ReadBytes: e.Rbytes, WriteBytes: e.Wbytes, Reads: e.Rios, Writes: e.Wios,
		})
	}
	slices.SortFunc(s.io, func(a, b DiskIO) int { return cmp.Compare(a.Device, b.Device) })
	return s
}

// pressure converts the shim's PSI of one resource (nil where the kernel has none).
func pressure(p *cg2.PSIStats) *Pressure {
	if p == nil || p.GetSome() == nil && p.GetFull() == nil {
		return nil
	}
	data := func(d *cg2.PSIData) PressureData {
		return PressureData{Total: d.GetTotal(), Avg10: d.GetAvg10(), Avg60: d.GetAvg60(), Avg300: d.GetAvg300()}
	}
	return &Pressure{Some: data(p.GetSome()), Full: data(p.GetFull())}
}

// rate follows a cumulative counter and derives its per-second rate over windows of
// at least minWindow, so that a sample taken just after another (an on-demand one)
// does not produce a noisy rate.
type rate struct {
	base  uint64
	at    time.Time
	value uint64
	known bool
}

// update feeds a new reading; a counter that went backwards restarts the window.
func (r *rate) update(v uint64, at time.Time, minWindow time.Duration) {
	if r.at.IsZero() || v < r.base || at.Before(r.at) {
		r.base, r.at, r.known = v, at, false
		return
	}
	d := at.Sub(r.at)
	if d <= 0 || d < minWindow {
		return
	}
	r.value = uint64(float64(v-r.base) / d.Seconds())
	r.known = true
	r.base, r.at = v, at
}
