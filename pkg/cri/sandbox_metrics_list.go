package cri

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/sandbox"
	"github.com/keelson/keelson/pkg/stats"
)

// ListPodSandboxMetrics reports, from the stats cache (sampled again first when older
// than stats.FreshAge), cAdvisor-named metrics of every
// ready pod (CPU, memory, processes and network, with an empty container label) and of
// its containers whose task runs.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, r *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	st, err := s.stats()
	if err != nil {
		return nil, err
	}
	st.Ensure(ctx)
	byPod := map[string][]*container.Container{}
	for _, c := range s.Containers.List() {
		byPod[c.SandboxID] = append(byPod[c.SandboxID], c)
	}
	var out []*runtimeapi.PodSandboxMetrics
	for _, sb := range s.Sandboxes.List() {
		if sb.Status().State != sandbox.StateReady {
			continue
		}
		md := sandboxMetadata(sb)
		pm := &runtimeapi.PodSandboxMetrics{PodSandboxId: sb.ID}
		if ps, ok := st.Pod(sb.ID); ok {
			m := metricSet{labels: []string{md.GetName(), md.GetNamespace(), "", sb.ID, ""}}
			m.cpu(ps.CPU)
			m.memory(ps.Memory)
			m.process(ps.Process)
			m.network(ps.Network)
			pm.Metrics = m.out
		}
		for _, c := range byPod[sb.ID] {
			cs, ok := st.Container(c.ID)
			if !ok || cs.CPU == nil && cs.Memory == nil {
				continue // no running task
			}
			m := metricSet{labels: []string{md.GetName(), md.GetNamespace(), containerMetadata(c).GetName(), c.ID, c.ImageName}}
			m.container(c, cs)
			pm.ContainerMetrics = append(pm.ContainerMetrics, &runtimeapi.ContainerMetrics{ContainerId: c.ID, Metrics: m.out})
		}
		out = append(out, pm)
	}
	return &runtimeapi.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

// metricSet builds the metrics of one pod or container.
type metricSet struct {
	labels []string // values of baseLabels
	ts     int64
	out    []*runtimeapi.Metric
}

func (m *metricSet) at(t time.Time) { m.ts = t.UnixNano() }

func (m *metricSet) add(d *metricDesc, v uint64, extra ...string) {
	if len(extra) != len(d.extra) {
		klog.ErrorS(nil, "Metric built with the wrong labels; dropped", "metric", d.name, "extra", extra)
		return
	}
	values := append(append(make([]string, 0, len(m.labels)+len(extra)), m.labels...), extra...)
	m.out = append(m.out, &runtimeapi.Metric{Name: d.name, Timestamp: m.ts, MetricType: d.typ, LabelValues: values, Value: u64(v)})
}

func seconds(ns uint64) uint64 { return ns / uint64(time.Second) }

func (m *metricSet) cpu(c *stats.CPU) {
	if c == nil {
		return
	}
	m.at(c.Timestamp)
	m.add(mCPUUsage, seconds(c.UsageCoreNanoSeconds))
	m.add(mCPUUser, seconds(c.UserNanoSeconds))
	m.add(mCPUSystem, seconds(c.SystemNanoSeconds))
	m.add(mCFSPeriods, c.Periods)
	m.add(mCFSThrottled, c.ThrottledPeriods)
	m.add(mCFSThrottledTime, seconds(c.ThrottledNanoSeconds))
}

func (m *metricSet) memory(mem *stats.Memory) {
	if mem == nil {
		return
	}
	m.at(mem.Timestamp)
	m.add(mMemUsage, mem.UsageBytes)
	m.add(mMemWorkingSet, mem.WorkingSetBytes)
	m.add(mMemRSS, mem.RSSBytes)
	m.add(mMemCache, mem.CacheBytes)
	m.add(mMemMappedFile, mem.MappedFileBytes)
	m.add(mMemSwap, mem.SwapBytes)
	m.add(mMemKernel, mem.KernelBytes)
	m.add(mMemActiveFile, mem.ActiveFileBytes)
	m.add(mMemInactiveFile, mem.InactiveFileBytes)
	m.add(mMemFailures, mem.PageFaults, "pgfault", "container")
	m.add(mMemFailures, mem.MajorPageFaults, "pgmajfault", "container")
	m.add(mOOMEvents, mem.OOMKills)
}

func (m *metricSet) process(p *stats.Process) {
	if p == nil {
		return
	}
	m.at(p.Timestamp)
	m.add(mProcesses, p.Count)
	m.add(mThreads, p.Count)
	m.add(mThreadsMax, p.Limit)
}

func (m *metricSet) network(n *stats.Network) {
	if n == nil {
		return
	}
	m.at(n.Timestamp)
	for _, i := range n.Interfaces {
		m.add(mNetRxBytes, i.RxBytes, i.Name)
		m.add(mNetRxPackets, i.RxPackets, i.Name)
		m.add(mNetRxDropped, i.RxDropped, i.Name)
		m.add(mNetRxErrors, i.RxErrors, i.Name)
		m.add(mNetTxBytes, i.TxBytes, i.Name)
		m.add(mNetTxPackets, i.TxPackets, i.Name)
		m.add(mNetTxDropped, i.TxDropped, i.Name)
		m.add(mNetTxErrors, i.TxErrors, i.Name)
	}
}

func (m *metricSet) container(c *container.Container, cs stats.ContainerStats) {
	m.cpu(cs.CPU)
	m.memory(cs.Memory)
	if mem := cs.Memory; mem != nil {
		m.add(mMemMaxUsage, mem.MaxUsageBytes)
		m.add(mMemFailcnt, mem.Failcnt)
	}
	m.process(cs.Process)
	for _, d := range cs.DiskIO {
		m.add(mFsReadBytes, d.ReadBytes, d.Device)
		m.add(mFsReads, d.Reads, d.Device)
		m.add(mFsWriteBytes, d.WriteBytes, d.Device)
		m.add(mFsWrites, d.Writes, d.Device)
		major, minor := deviceNumbers(d.Device)
		m.add(mBlkio, d.ReadBytes, d.Device, major, minor, "Read")
		m.add(mBlkio, d.WriteBytes, d.Device, major, minor, "Write")
	}
	if fs := cs.WritableLayer; fs != nil {
		m.at(fs.Timestamp)
		m.add(mFsUsage, fs.UsedBytes, fs.Mountpoint)
		var sfs unix.Statfs_t
		if fs.Mountpoint != "" && unix.Statfs(fs.Mountpoint, &sfs) == nil {
			m.add(mFsInodesFree, sfs.Ffree, fs.Mountpoint)
			m.add(mFsInodesTotal, sfs.Files, fs.Mountpoint)
			m.add(mFsLimit, sfs.Blocks*uint64(sfs.Bsize), fs.Mountpoint)
		}
	}
	if pid := c.Status().Pid; pid > 0 {
		fds, sockets := openFiles(int(pid))
		m.add(mFDs, fds)
		m.add(mSockets, sockets)
	}
	seen := time.Now()
	if cs.CPU != nil {
		seen = cs.CPU.Timestamp
	}
	m.at(seen)
	m.add(mLastSeen, uint64(seen.Unix()))
	if started := c.Status().StartedAt; started > 0 {
		m.add(mStartTime, uint64(started/int64(time.Second)))
	}
	res := c.Resources()
	for _, spec := range []struct {
		d *metricDesc
		v int64
	}{
		{mSpecCPUPeriod, res.GetCpuPeriod()},
		{mSpecCPUQuota, res.GetCpuQuota()},
		{mSpecCPUShares, res.GetCpuShares()},
		{mSpecMemLimit, res.GetMemoryLimitInBytes()},
		{mSpecSwapLimit, res.GetMemorySwapLimitInBytes()},
	} {
		// As cAdvisor: 0 for what is not set (no quota, no limit).
		m.add(spec.d, uint64(max(spec.v, 0)))
	}
}

// deviceNumbers splits a "major:minor" device label; a named device gives "".
func deviceNumbers(dev string) (major, minor string) {
	major, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return "", ""
	}
	return major, minor
}

// openFiles counts the open file descriptors and sockets of the processes in the
// cgroup of pid (the container's init), or of pid alone when its cgroup cannot be
// read. Processes that exit meanwhile are skipped.
func openFiles(pid int) (fds, sockets uint64) {
	for _, p := range cgroupProcs(pid) {
		dir := fmt.Sprintf("/proc/%d/fd", p)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			fds++
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}

// cgroupProcs lists the processes sharing pid's cgroup (v2, or v1's pids or memory
// hierarchy).
func cgroupProcs(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return []int{pid}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			file = filepath.Join("/sys/fs/cgroup", parts[2], "cgroup.procs")
		case slices.Contains(strings.Split(parts[1], ","), "pids"):
			file = filepath.Join("/sys/fs/cgroup/pids", parts[2], "cgroup.procs")
		default:
			continue
		}
		procs, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var out []int
		for _, f := range strings.Fields(string(procs)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return []int{pid}
}
