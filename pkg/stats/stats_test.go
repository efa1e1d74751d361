package stats

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRateFromTwoSamples(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var r rate
	r.update(5e9, t0, time.Second)
	if r.known {
		t.Fatal("a rate from one sample")
	}
	// 1.5 cores busy for 2s.
	r.update(8e9, t0.Add(2*time.Second), time.Second)
	if !r.known || r.value != 1.5e9 {
		t.Fatalf("rate = %d (known %v), want 1.5e9 nanocores", r.value, r.known)
	}
	// A sample right after another keeps the last rate and its window.
	r.update(8.1e9, t0.Add(2100*time.Millisecond), time.Second)
	if r.value != 1.5e9 || r.base != 8e9 {
		t.Fatalf("a 100ms window changed the rate: %d (base %d)", r.value, r.base)
	}
	// Idle since: the next full window measures from the old base.
	r.update(8e9+5e8, t0.Add(4*time.Second), time.Second)
	if r.value != 2.5e8 {
		t.Fatalf("rate = %d, want 2.5e8", r.value)
	}
	// A counter that went backwards (a new cgroup) starts over.
	r.update(1e9, t0.Add(6*time.Second), time.Second)
	if r.known {
		t.Fatalf("rate known after a counter reset: %d", r.value)
	}
}

func TestWorkingSetAndAvailable(t *testing.T) {
	const mb = 1 << 20
	at := time.Unix(2000, 0)
	s := fromV1(&cg1.Metrics{
		CPU: &cg1.CPUStat{Usage: &cg1.CPUUsage{Total: 7e9, User: 5e9, Kernel: 2e9}},
		Memory: &cg1.MemoryStat{
			Usage:             &cg1.MemoryEntry{Usage: 100 * mb, Limit: 256 * mb, Max: 120 * mb},
			TotalInactiveFile: 30 * mb, InactiveFile: 1 * mb, TotalRSS: 60 * mb, TotalPgFault: 10, TotalPgMajFault: 2,
		},
		Pids: &cg1.PidsStat{Current: 3},
	}, at)
	if s.cpu.UsageCoreNanoSeconds != 7e9 || s.cpu.UserNanoSeconds != 5e9 || s.cpu.SystemNanoSeconds != 2e9 {
		t.Errorf("cpu = %+v", s.cpu)
	}
	m := s.mem
	if m.WorkingSetBytes != 70*mb || m.UsageBytes != 100*mb || m.RSSBytes != 60*mb || m.PageFaults != 10 || m.MajorPageFaults != 2 {
		t.Errorf("memory = %+v", m)
	}
	if avail, ok := m.AvailableBytes(); !ok || avail != 186*mb {
		t.Errorf("available = %d %v, want 186 MiB", avail, ok)
	}
	if s.proc.Count != 3 {
		t.Errorf("processes = %+v", s.proc)
	}

	// No limit (the kernel's page-rounded maximum): nothing available to report.
	s = fromV1(&cg1.Metrics{Memory: &cg1.MemoryStat{Usage: &cg1.MemoryEntry{Usage: 10 * mb, Limit: 9223372036854771712}, TotalInactiveFile: 20 * mb}}, at)
	if s.mem.WorkingSetBytes != 0 {
		t.Errorf("working set with more inactive file than usage = %d, want 0", s.mem.WorkingSetBytes)
	}
	if _, ok := s.mem.AvailableBytes(); ok {
		t.Errorf("available reported without a limit")
	}

	s = fromV2(&cg2.Metrics{
		CPU:    &cg2.CPUStat{UsageUsec: 3000, UserUsec: 2000, SystemUsec: 1000},
		Memory: &cg2.MemoryStat{Usage: 50 * mb, InactiveFile: 20 * mb, Anon: 25 * mb, UsageLimit: 64 * mb, Pgfault: 4, Pgmajfault: 1},
	}, at)
	if s.cpu.UsageCoreNanoSeconds != 3e6 || s.mem.WorkingSetBytes != 30*mb || s.mem.RSSBytes != 25*mb {
		t.Errorf("v2: cpu %+v memory %+v", s.cpu, s.mem)
	}
	if avail, ok := s.mem.AvailableBytes(); !ok || avail != 34*mb {
		t.Errorf("v2 available = %d %v", avail, ok)
	}
}

func anyOf(t *testing.T, v any) *types.Metric {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(v)
	if err != nil {
		t.Fatal(err)
	}
	return &types.Metric{Timestamp: timestamppb.New(time.Unix(3000, 0)), Data: a}
}

func TestDecodeMetric(t *testing.T) {
	m := anyOf(t, &cg1.Metrics{CPU: &cg1.CPUStat{Usage: &cg1.CPUUsage{Total: 42}}})
	if m.Data.TypeUrl != "io.containerd.cgroups.v1.Metrics" {
		t.Errorf("v1 type URL = %s", m.Data.TypeUrl)
	}
	s, err := decodeMetric(m)
	if err != nil || s.cpu.UsageCoreNanoSeconds != 42 || !s.cpu.Timestamp.Equal(time.Unix(3000, 0)) {
		t.Errorf("v1: %+v %v", s.cpu, err)
	}
	m = anyOf(t, &cg2.Metrics{CPU: &cg2.CPUStat{UsageUsec: 42}})
	if m.Data.TypeUrl != "io.containerd.cgroups.v2.Metrics" {
		t.Errorf("v2 type URL = %s", m.Data.TypeUrl)
	}
	if s, err := decodeMetric(m); err != nil || s.cpu.UsageCoreNanoSeconds != 42000 {
		t.Errorf("v2: %+v %v", s.cpu, err)
	}
	if _, err := decodeMetric(anyOf(t, &types.Mount{})); err == nil {
		t.Errorf("decoded a metric of the wrong type")
	}
	if _, err := decodeMetric(&types.Metric{ID: "x"}); err == nil {
		t.Errorf("decoded a metric without data")
	}
}

const netDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  268707   3156    0    0    0     0          0         0   268707    3156    0    0    0     0       0          0
  eth0:    1296      16    1    2    0     0          0         0      936      12    3    4    0     0       0          0
 net1: 10 1 0 0 0 0 0 0 20 2 0 0 0 0 0 0
`

func TestParseNetDev(t *testing.T) {
	ifs, err := parseNetDev(strings.NewReader(netDev))
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{
		{Name: "eth0", RxBytes: 1296, RxPackets: 16, RxErrors: 1, RxDropped: 2, TxBytes: 936, TxPackets: 12, TxErrors: 3, TxDropped: 4},
		{Name: "net1", RxBytes: 10, RxPackets: 1, TxBytes: 20, TxPackets: 2},
	}
	if len(ifs) != len(want) || ifs[0] != want[0] || ifs[1] != want[1] {
		t.Fatalf("interfaces = %+v, want %+v", ifs, want)
	}
	n := Network{Interfaces: ifs}
	if d := n.Default(); d == nil || d.Name != "eth0" {
		t.Errorf("default interface = %+v", d)
	}
	for _, bad := range []string{"h1\nh2\neth0 1 2 3\n", "h1\nh2\neth0: 1 2 3\n", "h1\nh2\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n"} {
		if _, err := parseNetDev(strings.NewReader(bad)); err == nil {
			t.Errorf("parsed %q", bad)
		}
	}
	// The host's own file parses.
	if f, err := os.Open("/proc/self/net/dev"); err == nil {
		defer f.Close()
		if _, err := parseNetDev(f); err != nil {
			t.Errorf("/proc/self/net/dev: %v", err)
		}
	}
}

func TestFilter(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{ID: "abc"}, true},
		{Filter{ID: "abcdef"}, true},
		{Filter{ID: "abd"}, false},
		{Filter{SandboxID: "pod1"}, true},
		{Filter{SandboxID: "pod2"}, false},
		{Filter{Labels: map[string]string{"app": "web"}}, true},
		{Filter{Labels: map[string]string{"app": "web", "tier": "front"}}, true},
		{Filter{Labels: map[string]string{"app": "db"}}, false},
		{Filter{Labels: map[string]string{"other": ""}}, false},
		{Filter{ID: "abc", SandboxID: "pod1", Labels: map[string]string{"tier": "front"}}, true},
	} {
		if got := tc.f.Match("abcdef", "pod1xyz", labels); got != tc.want {
			t.Errorf("%+v: Match = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// fakeEdges stands in for containerd and /proc.
type fakeEdges struct {
	mu      sync.Mutex
	targets []target
	cpu     map[string]uint64 // task ID → cumulative CPU ns; absent = not running
	at      time.Time
	fetches [][]string
	layer   map[string]int64
	usages  int
}

func (f *fakeEdges) install(t *testing.T, c *Collector) {
	dir := t.TempDir()
	c.procRoot = dir
	c.list = func() []target { f.mu.Lock(); defer f.mu.Unlock(); return append([]target(nil), f.targets...) }
	c.fetch = func(_ context.Context, filters []string) ([]*types.Metric, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.fetches = append(f.fetches, filters)
		var out []*types.Metric
		for id, ns := range f.cpu {
			if len(filters) > 0 && !contains(filters, "id=="+id) {
				continue
			}
			m := anyOf(t, &cg1.Metrics{
				CPU:    &cg1.CPUStat{Usage: &cg1.CPUUsage{Total: ns}},
				Memory: &cg1.MemoryStat{Usage: &cg1.MemoryEntry{Usage: 10 << 20, Limit: 9223372036854771712}, TotalInactiveFile: 2 << 20, TotalPgFault: ns / 1e9},
				Pids:   &cg1.PidsStat{Current: 1},
			})
			m.ID, m.Timestamp = id, timestamppb.New(f.at)
			out = append(out, m)
		}
		return out, nil
	}
	c.usage = func(_ context.Context, key string) (snapshots.Usage, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.usages++
		return snapshots.Usage{Size: f.layer[key], Inodes: 3}, nil
	}
	c.fsRoot = func(context.Context) string { return "/var/lib/snapshots" }
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestCollectorSamplesPodsAndContainers(t *testing.T) {
	c := newCollector(Options{Interval: time.Second, FsInterval: time.Hour})
	f := &fakeEdges{
		targets: []target{
			{id: "pod", sandboxID: "pod", pod: true, running: true, pid: 4242, netns: true},
			{id: "busy", sandboxID: "pod", running: true},
			{id: "idle", sandboxID: "pod", running: true},
			{id: "created", sandboxID: "pod"},
		},
		cpu:   map[string]uint64{"pod": 1e7, "busy": 1e9, "idle": 1e8},
		at:    time.Now(),
		layer: map[string]int64{"busy": 4096, "idle": 0, "created": 0},
	}
	f.install(t, c)
	if err := os.MkdirAll(filepath.Join(c.procRoot, "4242", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.procRoot, "4242", "net", "dev"), []byte(netDev), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.sample(ctx, nil)
	busy, ok := c.Container("busy")
	if !ok || busy.CPU == nil || busy.CPU.RateKnown || busy.SandboxID != "pod" {
		t.Fatalf("after one sample: %+v", busy)
	}
	if busy.Memory.WorkingSetBytes != 8<<20 || busy.WritableLayer == nil || busy.WritableLayer.UsedBytes != 4096 || busy.WritableLayer.Mountpoint != "/var/lib/snapshots" {
		t.Errorf("busy memory %+v, layer %+v", busy.Memory, busy.WritableLayer)
	}
	if cr, ok := c.Container("created"); !ok || cr.CPU != nil || cr.WritableLayer == nil {
		t.Errorf("created container: %+v", cr)
	}
	pod, ok := c.Pod("pod")
	if !ok || pod.CPU.UsageCoreNanoSeconds != 1e9+1e8+1e7 || pod.Memory.UsageBytes != 30<<20 || pod.Process.Count != 3 {
		t.Fatalf("pod after one sample: cpu %+v memory %+v process %+v", pod.CPU, pod.Memory, pod.Process)
	}
	if pod.Network == nil || len(pod.Network.Interfaces) != 2 || pod.Network.Default().RxBytes != 1296 {
		t.Errorf("pod network = %+v", pod.Network)
	}
	if len(f.fetches) != 1 || f.fetches[0] != nil {
		t.Errorf("fetches = %v, want one without filters", f.fetches)
	}

	// Two seconds later busy used two more cores' worth... of one core.
	f.mu.Lock()
	f.at = f.at.Add(2 * time.Second)
	f.cpu["busy"] += 2e9
	f.mu.Unlock()
	c.sample(ctx, nil)
	busy, _ = c.Container("busy")
	if !busy.CPU.RateKnown || busy.CPU.UsageNanoCores != 1e9 {
		t.Errorf("busy rate = %d (known %v), want 1e9", busy.CPU.UsageNanoCores, busy.CPU.RateKnown)
	}
	if idle, _ := c.Container("idle"); !idle.CPU.RateKnown || idle.CPU.UsageNanoCores != 0 {
		t.Errorf("idle rate = %+v", idle.CPU)
	}
	if f.usages != 3 {
		t.Errorf("writable layers measured %d times, want 3 (once each within FsInterval)", f.usages)
	}
	pod, _ = c.Pod("pod")
	before := pod.CPU.UsageCoreNanoSeconds
	if before != 3e9+1e8+1e7 || pod.Memory.PageFaults != 3 {
		t.Errorf("pod cpu %d, page faults %d", before, pod.Memory.PageFaults)
	}

	// busy exits: its task is gone, its CPU stays in the pod's total.
	f.mu.Lock()
	delete(f.cpu, "busy")
	f.targets[1].running = false
	f.at = f.at.Add(2 * time.Second)
	f.mu.Unlock()
	c.sample(ctx, nil)
	if b, _ := c.Container("busy"); b.CPU != nil || b.WritableLayer == nil {
		t.Errorf("exited container still has CPU stats or lost its layer: %+v", b)
	}
	pod, _ = c.Pod("pod")
	if pod.CPU.UsageCoreNanoSeconds != before || pod.Process.Count != 2 || pod.Memory.UsageBytes != 20<<20 {
		t.Errorf("pod after an exit: cpu %d (was %d), processes %d, memory %d", pod.CPU.UsageCoreNanoSeconds, before, pod.Process.Count, pod.Memory.UsageBytes)
	}

	// Removed containers and pods are forgotten.
	f.mu.Lock()
	f.targets = f.targets[2:3]
	f.targets[0].sandboxID = "gone"
	f.mu.Unlock()
	c.sample(ctx, nil)
	if _, ok := c.Pod("pod"); ok {
		t.Errorf("a removed pod is still cached")
	}
	if _, ok := c.Container("busy"); ok {
		t.Errorf("a removed container is still cached")
	}
}

func TestEnsureSamplesWhatIsStale(t *testing.T) {
	c := newCollector(Options{Interval: time.Hour})
	f := &fakeEdges{
		targets: []target{
			{id: "pod", sandboxID: "pod", pod: true, running: true},
			{id: "a", sandboxID: "pod", running: true},
			{id: "b", sandboxID: "pod", running: true},
			{id: "other", sandboxID: "pod2", running: true},
		},
		cpu:   map[string]uint64{"pod": 1, "a": 2, "b": 3, "other": 4},
		at:    time.Now(),
		layer: map[string]int64{},
	}
	f.install(t, c)
	ctx := context.Background()
	c.Ensure(ctx, "a")
	if len(f.fetches) != 1 || len(f.fetches[0]) != 1 || f.fetches[0][0] != "id==a" {
		t.Fatalf("fetches = %v, want one for a", f.fetches)
	}
	if s, ok := c.Container("a"); !ok || s.CPU == nil {
		t.Errorf("a after Ensure: %+v", s)
	}
	if _, ok := c.Container("b"); ok {
		t.Errorf("b was sampled too")
	}
	c.Ensure(ctx, "a") // fresh: no call
	c.Ensure(ctx, "pod")
	if len(f.fetches) != 2 || len(f.fetches[1]) != 3 {
		t.Fatalf("fetches = %v, want a second one for the pod and its containers", f.fetches)
	}
	if p, ok := c.Pod("pod"); !ok || p.CPU.UsageCoreNanoSeconds != 6 {
		t.Errorf("pod after Ensure: %+v", p.CPU)
	}
	// A sample older than FreshAge is taken again.
	c.mu.Lock()
	c.tasks["a"].at = time.Now().Add(-FreshAge)
	c.mu.Unlock()
	c.Ensure(ctx, "a")
	if len(f.fetches) != 3 {
		t.Fatalf("fetches = %v, want a third one for a stale a", f.fetches)
	}
	// A task that does not answer is asked for once per FreshAge only.
	f.mu.Lock()
	delete(f.cpu, "other")
	f.mu.Unlock()
	c.Ensure(ctx, "other")
	c.Ensure(ctx, "other")
	if len(f.fetches) != 4 {
		t.Errorf("fetches = %v, want one try for other", f.fetches)
	}
	// No IDs: everything, once per FreshAge.
	c.Ensure(ctx)
	c.Ensure(ctx)
	if len(f.fetches) != 5 || len(f.fetches[4]) != 0 {
		t.Errorf("fetches = %v, want one unfiltered", f.fetches)
	}
	// ... unless a container started since: it is sampled at once.
	f.mu.Lock()
	f.targets = append(f.targets, target{id: "new", sandboxID: "pod", running: true})
	f.cpu["new"] = 7
	f.mu.Unlock()
	c.Ensure(ctx)
	if s, ok := c.Container("new"); len(f.fetches) != 6 || !ok || s.CPU == nil {
		t.Errorf("fetches = %v, new: %+v", f.fetches, s)
	}
}

// crictl stats divides the CPU time used between two calls a second apart by the
// time between their samples: the second call must not answer from the first's.
func TestEnsureGivesCrictlTwoSamples(t *testing.T) {
	c := newCollector(Options{Interval: time.Hour})
	f := &fakeEdges{
		targets: []target{{id: "pod", sandboxID: "pod", pod: true, running: true}, {id: "busy", sandboxID: "pod", running: true}},
		cpu:     map[string]uint64{"pod": 1, "busy": 5e9},
		at:      time.Now(),
		layer:   map[string]int64{},
	}
	f.install(t, c)
	ctx := context.Background()
	c.Ensure(ctx)
	first, _ := c.Container("busy")
	f.mu.Lock()
	f.cpu["busy"] += 1e9 // one core for a second
	f.at = f.at.Add(time.Second)
	f.mu.Unlock()
	c.mu.Lock()
	c.sampledAt = c.sampledAt.Add(-FreshAge) // a second went by
	c.mu.Unlock()
	c.Ensure(ctx)
	second, _ := c.Container("busy")
	if !second.CPU.Timestamp.After(first.CPU.Timestamp) || second.CPU.UsageCoreNanoSeconds-first.CPU.UsageCoreNanoSeconds != 1e9 {
		t.Fatalf("samples %+v then %+v", first.CPU, second.CPU)
	}
	if !second.CPU.RateKnown || second.CPU.UsageNanoCores != 1e9 {
		t.Errorf("usage_nano_cores %d (known %v), want 1e9", second.CPU.UsageNanoCores, second.CPU.RateKnown)
	}
}

// Callers that come while a sample runs wait for it and share it.
func TestEnsureSharesOneSample(t *testing.T) {
	c := newCollector(Options{Interval: time.Hour})
	f := &fakeEdges{targets: []target{{id: "a", sandboxID: "p", running: true}}, cpu: map[string]uint64{"a": 1}, at: time.Now(), layer: map[string]int64{}}
	f.install(t, c)
	release := make(chan struct{})
	fetch := c.fetch
	c.fetch = func(ctx context.Context, filters []string) ([]*types.Metric, error) {
		<-release
		return fetch(ctx, filters)
	}
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Ensure(context.Background()) }()
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if len(f.fetches) != 1 {
		t.Errorf("%d fetches for 5 concurrent callers, want 1", len(f.fetches))
	}
}

func TestDefaultIntervals(t *testing.T) {
	c := newCollector(Options{Interval: 2 * time.Second})
	if c.opts.Interval != 2*time.Second || c.opts.FsInterval != 12*time.Second {
		t.Errorf("intervals = %s %s", c.opts.Interval, c.opts.FsInterval)
	}
	c = newCollector(Options{})
	if c.opts.Interval != DefaultInterval || c.opts.FsInterval != DefaultFsInterval {
		t.Errorf("default intervals = %s %s", c.opts.Interval, c.opts.FsInterval)
	}
}

func TestPressureFromV2(t *testing.T) {
	psi := &cg2.PSIStats{Some: &cg2.PSIData{Avg10: 1.5, Total: 1234}, Full: &cg2.PSIData{Avg300: 0.25, Total: 99}}
	s := fromV2(&cg2.Metrics{
		CPU:    &cg2.CPUStat{UsageUsec: 1, PSI: psi},
		Memory: &cg2.MemoryStat{Usage: 1, PSI: psi},
		Io:     &cg2.IOStat{PSI: psi},
	}, time.Now())
	want := &Pressure{Some: PressureData{Avg10: 1.5, Total: 1234}, Full: PressureData{Avg300: 0.25, Total: 99}}
	for name, got := range map[string]*Pressure{"cpu": s.cpu.Pressure, "memory": s.mem.Pressure, "io": s.ioPSI} {
		if got == nil || *got != *want {
			t.Errorf("%s pressure %+v, want %+v", name, got, want)
		}
	}
	// A kernel without PSI: no pressure rather than zeros.
	if s := fromV2(&cg2.Metrics{CPU: &cg2.CPUStat{UsageUsec: 1}}, time.Now()); s.cpu.Pressure != nil || s.ioPSI != nil {
		t.Errorf("pressure without PSI: %+v %+v", s.cpu.Pressure, s.ioPSI)
	}
}
