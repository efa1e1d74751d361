package stats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/metrics"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/sandbox"
)

// Defaults: kubelet asks for stats every 10s; writable layers are walked less often.
const (
	DefaultInterval   = 10 * time.Second
	DefaultFsInterval = 60 * time.Second
	// FreshAge is how old a cached sample may be when a stats call asks for it; an
	// older one is sampled again first. crictl stats takes two samples a second apart
	// and divides the CPU time used by the time between them; usage_nano_cores is a
	// rate over at least this window.
	FreshAge = time.Second
)

const (
	// callTimeout bounds one containerd call of the collector.
	callTimeout = 30 * time.Second
	// missedLimit: a task absent from this many samples in a row is dropped even if
	// its container still says it runs.
	missedLimit = 3
)

// Options configure the collector; zero values take the defaults.
type Options struct {
	// Interval between background samples of all tasks. Zero: DefaultInterval.
	Interval time.Duration
	// FsInterval between measurements of a writable layer. Zero: six Intervals.
	FsInterval time.Duration
	// Snapshotter holds the containers' writable layers (snapshot key = container ID).
	Snapshotter string
}

// Sources tell the collector what exists: pkg/container's and pkg/sandbox's List.
type Sources struct {
	Containers func() []*container.Container
	Sandboxes  func() []*sandbox.Sandbox
}

// target is one task the collector may sample: a container or a pod's infra task.
type target struct {
	id        string
	sandboxID string // the pod; equal to id for an infra task
	pod       bool
	running   bool   // container RUNNING, sandbox READY
	pid       uint32 // infra task's pid (pods)
	netns     bool   // the pod has its own network namespace
	netnsPath string // where it is pinned (read there when there is no infra process)
	// cgroupsPath is the task's cgroup (the OCI spec's cgroupsPath, either driver's
	// form); asked once per task.
	cgroupsPath func() string
}

// Collector samples all tasks periodically and answers from its cache.
type Collector struct {
	opts Options

	// The edges, replaceable in tests.
	list     func() []target
	fetch    func(ctx context.Context, filters []string) ([]*types.Metric, error)
	usage    func(ctx context.Context, key string) (snapshots.Usage, error)
	fsRoot   func(ctx context.Context) string
	procRoot string
	// cgroups reads tasks' metrics from their cgroup files; nil: containerd is asked
	// for every task.
	cgroups *cgroupReader

	sampleMu sync.Mutex         // one task sample at a time; callers that wait share its result
	interval chan time.Duration // a new background interval (SetInterval)
	fsMu     sync.Mutex         // one round of writable-layer measurements at a time

	mu         sync.RWMutex
	mountpoint string
	tasks      map[string]*taskEntry
	fs         map[string]Filesystem
	pods       map[string]*podEntry
	tried      map[string]time.Time // last on-demand sample per ID
	sampledAt  time.Time            // start of the last sample of every task
}

type taskEntry struct {
	sandboxID string
	at        time.Time // when last sampled
	last      taskSample
	cpuRate   rate
	missed    int
}

type podEntry struct {
	at      time.Time // when its tasks were last summed
	stats   PodStats
	cpuRate rate
	// retired holds the cumulative counters of the pod's tasks that are gone, so the
	// pod's totals never go backwards when a container exits.
	retired cumulative
	members map[string]bool // tasks counted in the last aggregate
}

// cumulative are the counters that only grow.
type cumulative struct {
	cpu, user, system                    uint64
	periods, throttledPeriods, throttled uint64
	pageFaults, majorPageFaults, ooms    uint64
}

func (c *cumulative) add(s taskSample) {
	if s.cpu != nil {
		c.cpu += s.cpu.UsageCoreNanoSeconds
		c.user += s.cpu.UserNanoSeconds
		c.system += s.cpu.SystemNanoSeconds
		c.periods += s.cpu.Periods
		c.throttledPeriods += s.cpu.ThrottledPeriods
		c.throttled += s.cpu.ThrottledNanoSeconds
	}
	if s.mem != nil {
		c.pageFaults += s.mem.PageFaults
		c.majorPageFaults += s.mem.MajorPageFaults
		c.ooms += s.mem.OOMKills
	}
}

// New returns a collector over containerd's tasks and snapshotter; Start runs it.
func New(client *containerd.Client, opts Options, src Sources) *Collector {
	c := newCollector(opts)
	c.list = func() []target { return targets(src) }
	c.fetch = func(ctx context.Context, filters []string) ([]*types.Metric, error) {
		resp, err := client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: filters})
		if err != nil {
			return nil, err
		}
		return resp.GetMetrics(), nil
	}
	c.usage = func(ctx context.Context, key string) (snapshots.Usage, error) {
		return client.SnapshotService(opts.Snapshotter).Usage(ctx, key)
	}
	c.cgroups = newCgroupReader(cgroups.Root, cgroups.IsV2(), fileBudget())
	c.fsRoot = func(ctx context.Context) string {
		resp, err := client.IntrospectionService().Plugins(ctx, `type=="io.containerd.snapshotter.v1",id=="`+opts.Snapshotter+`"`)
		if err != nil || len(resp.GetPlugins()) == 0 {
			klog.V(2).InfoS("Cannot find the snapshotter's root", "snapshotter", opts.Snapshotter, "err", err)
			return ""
		}
		return resp.GetPlugins()[0].GetExports()["root"]
	}
	return c
}

func newCollector(opts Options) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.FsInterval <= 0 {
		opts.FsInterval = DefaultFsInterval
		if opts.Interval != DefaultInterval {
			opts.FsInterval = 6 * opts.Interval
		}
	}
	return &Collector{
		opts:     opts,
		procRoot: "/proc",
		interval: make(chan time.Duration, 1),
		tasks:    map[string]*taskEntry{},
		fs:       map[string]Filesystem{},
		pods:     map[string]*podEntry{},
		tried:    map[string]time.Time{},
	}
}

// targets lists the containers and sandboxes to sample.
func targets(src Sources) []target {
	var out []target
	if src.Sandboxes != nil {
		for _, sb := range src.Sandboxes() {
			st := sb.Status()
			out = append(out, target{
				id: sb.ID, sandboxID: sb.ID, pod: true,
				running: st.State == sandbox.StateReady, pid: st.Pid, netns: sb.NetNSPath != "", netnsPath: sb.NetNSPath,
				cgroupsPath: func() string { return oci.SpecCgroupsPath(sb.Spec()) },
			})
		}
	}
	if src.Containers != nil {
		for _, c := range src.Containers() {
			out = append(out, target{
				id: c.ID, sandboxID: c.SandboxID, running: c.Status().State == container.StateRunning,
				cgroupsPath: func() string { return oci.SpecCgroupsPath(c.Spec()) },
			})
		}
	}
	return out
}

// Interval is the sampling interval in effect.
func (c *Collector) Interval() time.Duration { return c.opts.Interval }

// Start samples at once, then every Interval until ctx ends.
func (c *Collector) Start(ctx context.Context) {
	klog.InfoS("Collecting stats", "interval", c.opts.Interval, "fsInterval", c.opts.FsInterval, "snapshotter", c.opts.Snapshotter)
	go func() {
		t := time.NewTicker(c.opts.Interval)
		defer t.Stop()
		for {
			c.sampleMu.Lock()
			in := c.sampleTasks(ctx, nil, time.Now())
			c.sampleMu.Unlock()
			go c.measureLayers(ctx, in, true, false)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case d := <-c.interval:
				t.Reset(d)
			}
		}
	}()
}

// SetInterval changes the background sampling interval (a config reload); the next
// sample is taken at once.
func (c *Collector) SetInterval(d time.Duration) {
	select {
	case <-c.interval: // an earlier change not taken yet: this one replaces it
	default:
	}
	c.interval <- d
}

// Container is a container's last sample, from the cache only.
func (c *Collector) Container(id string) (ContainerStats, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, sampled := c.tasks[id]
	fs, measured := c.fs[id]
	if !sampled && !measured {
		return ContainerStats{ID: id}, false
	}
	out := ContainerStats{ID: id}
	if sampled {
		out.SandboxID = e.sandboxID
		out.CPU, out.Memory, out.Process, out.DiskIO, out.IOPressure = e.last.cpu, e.last.mem, e.last.proc, e.last.io, e.last.ioPSI
	}
	if measured {
		if fs.Mountpoint == "" {
			fs.Mountpoint = c.mountpoint // found after the measurement
		}
		out.WritableLayer = &fs
	}
	return out.clone(), true
}

// Pod is a pod's last sample, from the cache only.
func (c *Collector) Pod(id string) (PodStats, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.pods[id]
	if !ok || p.stats.CPU == nil && p.stats.Memory == nil && p.stats.Network == nil {
		return PodStats{ID: id}, false
	}
	return p.stats.clone(), true
}

// Ensure makes the cached samples of the given containers and pods (a pod with its
// containers; no IDs: everything) at most FreshAge old. What is older is sampled in
// one containerd call; callers arriving while it runs wait and share it. An ID whose
// task gives no sample (it does not run) is tried once per FreshAge.
func (c *Collector) Ensure(ctx context.Context, ids ...string) {
	asked := time.Now()
	c.sampleMu.Lock()
	scope, stale := c.stale(asked, ids)
	var in []target
	if stale {
		in = c.sampleTasks(ctx, scope, time.Now())
	}
	c.sampleMu.Unlock()
	if len(in) > 0 {
		c.measureLayers(ctx, in, false, false) // the layers never measured yet
	}
}

// stale says whether a sample is needed for ids asked at asked, and of what (nil:
// everything). The caller holds sampleMu.
func (c *Collector) stale(asked time.Time, ids []string) (map[string]bool, bool) {
	if len(ids) == 0 {
		var running []string
		for _, t := range c.list() {
			if t.running {
				running = append(running, t.id)
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if asked.Sub(c.sampledAt) >= FreshAge {
			return nil, true
		}
		// Fresh, but what started since has no sample yet.
		return nil, len(c.unsampled(asked, running)) > 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	need := c.unsampled(asked, ids)
	return need, len(need) > 0
}

// unsampled returns those of ids whose sample is older than FreshAge (or that have
// none and were not tried within it), and marks them tried. The caller holds mu.
func (c *Collector) unsampled(asked time.Time, ids []string) map[string]bool {
	need := map[string]bool{}
	for _, id := range ids {
		last, known := c.tried[id] // a task that gave no sample
		if e, ok := c.tasks[id]; ok {
			last, known = e.at, true
		} else if p, ok := c.pods[id]; ok && p.stats.CPU != nil {
			last, known = p.at, true
		}
		if known && asked.Sub(last) < FreshAge {
			continue
		}
		c.tried[id] = asked
		need[id] = true
	}
	return need
}

// sample takes one sample of the targets in scope (nil: all of them, and forget
// what no longer exists), then measures the writable layers that are due.
func (c *Collector) sample(ctx context.Context, scope map[string]bool) {
	c.sampleMu.Lock()
	in := c.sampleTasks(ctx, scope, time.Now())
	c.sampleMu.Unlock()
	c.measureLayers(ctx, in, scope == nil, true)
}

// sampleTasks samples the tasks and pod networks in scope, as of start, and returns
// the targets it covered. The caller holds sampleMu.
func (c *Collector) sampleTasks(ctx context.Context, scope map[string]bool, start time.Time) []target {
	full := scope == nil
	if full {
		defer func() { metrics.StatsSampleDuration.Observe(time.Since(start).Seconds()) }()
	}
	all := c.list()
	var in []target
	running := 0
	for _, t := range all {
		if full || scope[t.id] || scope[t.sandboxID] {
			in = append(in, t)
			if t.running {
				running++
			}
		}
	}

	samples, fetched := c.sampleTaskMetrics(ctx, in, full, running > 0)

	// Pod networks, from the infra process's view of /proc.
	nets := map[string]*Network{}
	for _, t := range in {
		if t.pod && t.running && t.netns && (t.pid > 0 || t.netnsPath != "") {
			if n, err := c.readNetwork(t); err == nil {
				nets[t.id] = n
			} else {
				klog.V(4).InfoS("Reading pod network counters", "podSandboxID", t.id, "err", err)
			}
		}
	}

	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updateTasks(in, samples, fetched, start)
	c.updatePods(in, nets, now, start)
	if full {
		c.sampledAt = start
		c.forget(all)
	}
	return in
}

// sampleTaskMetrics samples the tasks among in: from their cgroups where the
// collector can read them, the others (all, without a cgroup reader) in one
// containerd call. fetched is false when containerd was asked and did not answer.
func (c *Collector) sampleTaskMetrics(ctx context.Context, in []target, full, anyRunning bool) (map[string]taskSample, bool) {
	samples := map[string]taskSample{}
	ask := in
	if c.cgroups != nil {
		c.cgroups.begin()
		ask = nil
		for _, t := range in {
			if t.pod && t.pid == 0 {
				continue // no infra process, no task
			}
			s, err := c.cgroups.sample(t.id, t.cgroupsPath, time.Now())
			switch {
			case err == nil:
				samples[t.id] = s
			case errors.Is(err, errNoCgroup):
				if t.running { // not on this host: a VM-based runtime's, say
					ask = append(ask, t)
				}
			default:
				klog.V(4).InfoS("Reading a task's cgroup", "id", t.id, "err", err)
			}
		}
		if full {
			ids := make(map[string]bool, len(in))
			for _, t := range in {
				ids[t.id] = true
			}
			c.cgroups.forget(func(id string) bool { return ids[id] })
		}
		full, anyRunning = false, len(ask) > 0
	}
	if !anyRunning {
		return samples, true
	}
	// One call for all of them.
	var filters []string
	if !full {
		for _, t := range ask {
			filters = append(filters, "id=="+t.id)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	metrics, err := c.fetch(cctx, filters)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			klog.V(2).InfoS("Sampling task metrics", "err", err)
		}
		return samples, false
	}
	for _, m := range metrics {
		s, err := decodeMetric(m)
		if err != nil {
			klog.V(4).InfoS("Skipping a task's metrics", "id", m.GetID(), "err", err)
			continue
		}
		samples[m.GetID()] = s
	}
	return samples, true
}

// measureLayers measures the writable layers of the containers among in: new ones at
// once, the others every FsInterval when full. It has its own lock, so the walks of
// upper directories never hold up task samples; without wait it gives up when another
// round is still running (that round or the next one measures them).
func (c *Collector) measureLayers(ctx context.Context, in []target, full, wait bool) {
	if wait {
		c.fsMu.Lock()
	} else if !c.fsMu.TryLock() {
		return
	}
	defer c.fsMu.Unlock()
	c.mu.RLock()
	mountpoint := c.mountpoint
	var measure []string
	for _, t := range in {
		if t.pod {
			continue
		}
		if fs, ok := c.fs[t.id]; !ok || (full && time.Since(fs.Timestamp) >= c.opts.FsInterval) {
			measure = append(measure, t.id)
		}
	}
	c.mu.RUnlock()
	if mountpoint == "" && len(measure) > 0 {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		mountpoint = c.fsRoot(cctx)
		cancel()
	}
	layers := map[string]Filesystem{}
	for _, id := range measure {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		u, err := c.usage(cctx, id)
		cancel()
		if err != nil {
			klog.V(4).InfoS("Measuring writable layer", "containerID", id, "err", err)
			continue
		}
		layers[id] = Filesystem{Timestamp: time.Now(), Mountpoint: mountpoint, UsedBytes: uint64(max(u.Size, 0)), InodesUsed: uint64(max(u.Inodes, 0))}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if mountpoint != "" {
		c.mountpoint = mountpoint
	}
	for id, fs := range layers {
		c.fs[id] = fs
	}
}

// updateTasks stores new samples and drops tasks that are gone.
func (c *Collector) updateTasks(in []target, samples map[string]taskSample, fetched bool, start time.Time) {
	for _, t := range in {
		e := c.tasks[t.id]
		if s, ok := samples[t.id]; ok {
			if e == nil {
				e = &taskEntry{sandboxID: t.sandboxID}
				c.tasks[t.id] = e
			}
			e.missed, e.at = 0, start
			if s.cpu != nil {
				e.cpuRate.update(s.cpu.UsageCoreNanoSeconds, s.cpu.Timestamp, FreshAge)
				s.cpu.UsageNanoCores, s.cpu.RateKnown = e.cpuRate.value, e.cpuRate.known
			}
			e.last = s
			continue
		}
		if e == nil || (!fetched && t.running) {
			continue
		}
		e.missed++
		if !t.running || e.missed >= missedLimit {
			c.dropTask(t.id)
		}
	}
}

// dropTask forgets a task, keeping its counters in its pod's total.
func (c *Collector) dropTask(id string) {
	e, ok := c.tasks[id]
	if !ok {
		return
	}
	if p := c.pods[e.sandboxID]; p != nil && p.members[id] {
		p.retired.add(e.last)
		delete(p.members, id)
	}
	delete(c.tasks, id)
}

// updatePods sums each ready pod's tasks and stores its network counters.
func (c *Collector) updatePods(in []target, nets map[string]*Network, now, start time.Time) {
	var pods []target
	for _, t := range in {
		if t.pod {
			pods = append(pods, t)
		}
	}
	if len(pods) == 0 {
		return
	}
	bySandbox := map[string][]string{}
	for id, e := range c.tasks {
		bySandbox[e.sandboxID] = append(bySandbox[e.sandboxID], id)
	}
	for _, t := range pods {
		p := c.pods[t.id]
		if p == nil {
			p = &podEntry{members: map[string]bool{}}
			c.pods[t.id] = p
		}
		if !t.running {
			p.stats = PodStats{ID: t.id}
			continue
		}
		sum := p.retired
		var mem *Memory
		var proc *Process
		members := map[string]bool{}
		sampled := false
		for _, id := range bySandbox[t.id] {
			s := c.tasks[id].last
			members[id] = true
			sum.add(s)
			if s.cpu != nil {
				sampled = true
			}
			if s.mem != nil {
				if mem == nil {
					mem = &Memory{Timestamp: now}
				}
				addMemory(mem, s.mem)
			}
			if s.proc != nil {
				if proc == nil {
					proc = &Process{Timestamp: now}
				}
				proc.Count += s.proc.Count
			}
		}
		p.members, p.at = members, start
		st := PodStats{ID: t.id, Memory: mem, Process: proc, Network: nets[t.id]}
		if sampled {
			p.cpuRate.update(sum.cpu, now, FreshAge)
			st.CPU = &CPU{
				Timestamp: now, UsageCoreNanoSeconds: sum.cpu, UserNanoSeconds: sum.user, SystemNanoSeconds: sum.system,
				UsageNanoCores: p.cpuRate.value, RateKnown: p.cpuRate.known,
				Periods: sum.periods, ThrottledPeriods: sum.throttledPeriods, ThrottledNanoSeconds: sum.throttled,
			}
		}
		if mem != nil {
			mem.PageFaults, mem.MajorPageFaults, mem.OOMKills = sum.pageFaults, sum.majorPageFaults, sum.ooms
		}
		if st.Network == nil && p.stats.Network != nil && t.netns {
			st.Network = p.stats.Network // keep the last reading over a failed one
		}
		p.stats = st
	}
}

// addMemory adds a task's current memory to a pod's; cumulative counters are summed
// separately (with the retired tasks') and limits do not add up.
func addMemory(dst, m *Memory) {
	dst.UsageBytes += m.UsageBytes
	dst.WorkingSetBytes += m.WorkingSetBytes
	dst.RSSBytes += m.RSSBytes
	dst.CacheBytes += m.CacheBytes
	dst.MappedFileBytes += m.MappedFileBytes
	dst.ActiveFileBytes += m.ActiveFileBytes
	dst.InactiveFileBytes += m.InactiveFileBytes
	dst.KernelBytes += m.KernelBytes
	dst.SwapBytes += m.SwapBytes
}

// forget drops everything about objects that no longer exist.
func (c *Collector) forget(all []target) {
	exists := make(map[string]bool, len(all))
	for _, t := range all {
		exists[t.id] = true
	}
	for id := range c.tasks {
		if !exists[id] {
			c.dropTask(id)
		}
	}
	for id := range c.pods {
		if !exists[id] {
			delete(c.pods, id)
		}
	}
	for id := range c.fs {
		if !exists[id] {
			delete(c.fs, id)
		}
	}
	for id, at := range c.tried {
		if !exists[id] || time.Since(at) > FreshAge {
			delete(c.tried, id)
		}
	}
}

// readNetwork reads a pod's interface counters: through its infra process, or from
// inside its pinned network namespace when it has none.
func (c *Collector) readNetwork(t target) (*Network, error) {
	path := filepath.Join(c.procRoot, strconv.FormatUint(uint64(t.pid), 10), "net", "dev")
	var ifs []Interface
	read := func() error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if ifs, err = parseNetDev(f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return nil
	}
	var err error
	if t.pid > 0 {
		err = read()
	} else {
		path = "/proc/thread-self/net/dev"
		err = netns.Do(t.netnsPath, read)
	}
	if err != nil {
		return nil, err
	}
	return &Network{Timestamp: time.Now(), Interfaces: ifs}, nil
}
