package stats

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeFiles lays out cgroup files under root: name → content.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupReaderV1(t *testing.T) {
	root := t.TempDir()
	dir := "kubepods/pod1/c1"
	files := map[string]string{
		"cpuacct/" + dir + "/cpuacct.usage":                 "5000000000\n",
		"cpuacct/" + dir + "/cpuacct.stat":                  "user 300\nsystem 100\n",
		"cpu/" + dir + "/cpu.stat":                          "nr_periods 10\nnr_throttled 2\nthrottled_time 7000\n",
		"memory/" + dir + "/memory.stat":                    "cache 1\ntotal_rss 4096\ntotal_cache 8192\ntotal_inactive_file 1000\ntotal_pgfault 12\ntotal_pgmajfault 3\n",
		"memory/" + dir + "/memory.usage_in_bytes":          "10000\n",
		"memory/" + dir + "/memory.max_usage_in_bytes":      "20000\n",
		"memory/" + dir + "/memory.failcnt":                 "4\n",
		"memory/" + dir + "/memory.limit_in_bytes":          "9223372036854771712\n",
		"memory/" + dir + "/memory.kmem.usage_in_bytes":     "512\n",
		"memory/" + dir + "/memory.oom_control":             "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"pids/" + dir + "/pids.current":                     "3\n",
		"pids/" + dir + "/pids.max":                         "max\n",
		"blkio/" + dir + "/blkio.throttle.io_service_bytes": "254:0 Read 100\n254:0 Write 200\n254:0 Total 300\nTotal 300\n",
		"blkio/" + dir + "/blkio.throttle.io_serviced":      "254:0 Read 1\n254:0 Write 2\nTotal 3\n",
	}
	for _, budget := range []int{0, 1000} { // files opened for each read, or kept open
		writeFiles(t, root, files)
		r := newCgroupReader(root, false, budget)
		r.devices = map[[2]uint64]string{{254, 0}: "vda"}
		asked := 0
		path := func() string { asked++; return "/" + dir }
		at := time.Unix(1000, 0)
		s, err := r.sample("c1", path, at)
		if err != nil {
			t.Fatal(err)
		}
		if s.cpu.UsageCoreNanoSeconds != 5e9 || s.cpu.UserNanoSeconds != 3e9 || s.cpu.SystemNanoSeconds != 1e9 || s.cpu.ThrottledPeriods != 2 || s.cpu.ThrottledNanoSeconds != 7000 {
			t.Errorf("cpu = %+v", s.cpu)
		}
		if m := s.mem; m.UsageBytes != 10000 || m.WorkingSetBytes != 9000 || m.RSSBytes != 4096 || m.CacheBytes != 8192 ||
			m.MaxUsageBytes != 20000 || m.Failcnt != 4 || m.LimitBytes != 0 || m.KernelBytes != 512 || m.SwapBytes != 0 ||
			m.PageFaults != 12 || m.MajorPageFaults != 3 || m.OOMKills != 1 || !m.Timestamp.Equal(at) {
			t.Errorf("memory = %+v", m)
		}
		if s.proc.Count != 3 || s.proc.Limit != 0 {
			t.Errorf("process = %+v", s.proc)
		}
		if want := []DiskIO{{Device: "vda", ReadBytes: 100, WriteBytes: 200, Reads: 1, Writes: 2}}; !slices.Equal(s.io, want) {
			t.Errorf("io = %+v, want %+v", s.io, want)
		}
		// A second sample reads the files again (kept open or not), without asking for
		// the cgroup's path again.
		writeFiles(t, root, map[string]string{"cpuacct/" + dir + "/cpuacct.usage": "6000000000\n"})
		if s, err = r.sample("c1", path, at); err != nil || s.cpu.UsageCoreNanoSeconds != 6e9 {
			t.Errorf("second sample: %v, %+v", err, s.cpu)
		}
		if asked != 1 {
			t.Errorf("the cgroup path was asked %d times", asked)
		}
		if budget == 0 && r.open != 0 || budget > 0 && r.open == 0 {
			t.Errorf("budget %d: %d files kept open", budget, r.open)
		}
		r.forget(func(string) bool { return false })
		if r.open != 0 || len(r.groups) != 0 {
			t.Errorf("after forget: %d files open, %d groups", r.open, len(r.groups))
		}
		// No cgroup: not there, or no path.
		if _, err := r.sample("c2", func() string { return "/kubepods/pod1/c2" }, at); !errors.Is(err, errNoCgroup) {
			t.Errorf("missing cgroup: %v", err)
		}
		if _, err := r.sample("c3", func() string { return "" }, at); !errors.Is(err, errNoCgroup) {
			t.Errorf("no cgroups path: %v", err)
		}
		if r.open != 0 {
			t.Errorf("files kept open for missing cgroups: %d", r.open)
		}
	}
}

func TestCgroupReaderV2(t *testing.T) {
	root := t.TempDir()
	// The systemd driver's form: slice, prefix and name.
	dir := "kubepods.slice/kubepods-pod1.slice/keelson-c1.scope"
	writeFiles(t, root, map[string]string{
		dir + "/cpu.stat":            "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 4\nnr_throttled 1\nthrottled_usec 10\n",
		dir + "/cpu.pressure":        "some avg10=1.50 avg60=0.00 avg300=0.00 total=123\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=45\n",
		dir + "/memory.stat":         "anon 4096\nfile 8192\nfile_mapped 100\nactive_file 3000\ninactive_file 2000\nkernel_stack 16\nslab 32\npgfault 9\npgmajfault 1\n",
		dir + "/memory.current":      "12000\n",
		dir + "/memory.max":          "1048576\n",
		dir + "/memory.peak":         "15000\n",
		dir + "/memory.swap.current": "7\n",
		dir + "/memory.swap.max":     "max\n",
		dir + "/memory.events":       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
		dir + "/pids.current":        "2\n",
		dir + "/pids.max":            "100\n",
		dir + "/io.stat":             "254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
		// no memory.pressure, io.pressure: a kernel without PSI for them
	})
	r := newCgroupReader(root, true, 100)
	s, err := r.sample("c1", func() string { return "kubepods-pod1.slice:keelson:c1" }, time.Unix(1000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if c := s.cpu; c.UsageCoreNanoSeconds != 5e6 || c.UserNanoSeconds != 3e6 || c.ThrottledNanoSeconds != 1e4 ||
		c.Pressure == nil || c.Pressure.Some.Avg10 != 1.5 || c.Pressure.Some.Total != 123 || c.Pressure.Full.Total != 45 {
		t.Errorf("cpu = %+v", c)
	}
	if m := s.mem; m.UsageBytes != 12000 || m.WorkingSetBytes != 10000 || m.RSSBytes != 4096 || m.KernelBytes != 48 ||
		m.LimitBytes != 1048576 || m.SwapBytes != 7 || m.SwapLimitBytes != 0 || m.MaxUsageBytes != 15000 || m.OOMKills != 1 || m.Pressure != nil {
		t.Errorf("memory = %+v", m)
	}
	if s.proc.Count != 2 || s.proc.Limit != 100 || s.ioPSI != nil {
		t.Errorf("process = %+v, io pressure %+v", s.proc, s.ioPSI)
	}
	if want := []DiskIO{{Device: "254:0", ReadBytes: 100, WriteBytes: 200, Reads: 1, Writes: 2}}; !slices.Equal(s.io, want) {
		t.Errorf("io = %+v, want %+v", s.io, want)
	}
	// Files the kernel does not have are not looked for again.
	g := r.groups["c1"]
	if !g.missing["memory.pressure"] || !g.missing["io.pressure"] {
		t.Errorf("missing files not remembered: %v", g.missing)
	}
	// The cgroup removed: the task has none, and its files are closed.
	if err := os.RemoveAll(filepath.Join(root, "kubepods.slice")); err != nil {
		t.Fatal(err)
	}
	r.forget(func(string) bool { return false })
	if _, err := r.sample("c1", func() string { return "kubepods-pod1.slice:keelson:c1" }, time.Now()); !errors.Is(err, errNoCgroup) {
		t.Errorf("removed cgroup: %v", err)
	}
}

// With a cgroup reader, tasks are read from their cgroups; containerd is asked only
// for running tasks that have none on this host, and never for a pod without an
// infra process.
func TestSampleReadsCgroups(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"k/a/cpu.stat": "usage_usec 1000\n",
		"k/p/cpu.stat": "usage_usec 2000\n",
	})
	f := &fakeEdges{cpu: map[string]uint64{"vm": 7e9, "a": 1}, at: time.Now()}
	f.targets = []target{
		{id: "p", sandboxID: "p", pod: true, running: true, pid: 1, cgroupsPath: func() string { return "/k/p" }},
		{id: "a", sandboxID: "p", running: true, cgroupsPath: func() string { return "/k/a" }},
		{id: "vm", sandboxID: "p", running: true, cgroupsPath: func() string { return "/k/vm" }},
		{id: "gone", sandboxID: "p", cgroupsPath: func() string { return "/k/gone" }},
		{id: "q", sandboxID: "q", pod: true, running: true, cgroupsPath: func() string { return "/k/q" }},
	}
	c := newCollector(Options{Interval: time.Hour})
	f.install(t, c)
	c.cgroups = newCgroupReader(root, true, 100)
	c.sample(context.Background(), nil)
	if want := [][]string{{"id==vm"}}; !slices.EqualFunc(f.fetches, want, slices.Equal) {
		t.Errorf("containerd asked for %v, want %v", f.fetches, want)
	}
	for id, want := range map[string]uint64{"a": 1e6, "vm": 7e9} {
		if s, ok := c.Container(id); !ok || s.CPU.UsageCoreNanoSeconds != want {
			t.Errorf("container %s: %v %+v", id, ok, s.CPU)
		}
	}
	if p, ok := c.Pod("p"); !ok || p.CPU.UsageCoreNanoSeconds != 2e6+1e6+7e9 {
		t.Errorf("pod p: %v %+v", ok, p.CPU)
	}
	// Only what is running without a cgroup: no call at all.
	f.targets = f.targets[:2]
	f.fetches = nil
	c.sample(context.Background(), nil)
	if len(f.fetches) != 0 {
		t.Errorf("containerd asked for %v", f.fetches)
	}
}
