package stats

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cg1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cg2 "github.com/containerd/cgroups/v3/cgroup2/stats"

	"github.com/keelson/keelson/pkg/cgroups"
)

// Why keelson reads its tasks' cgroups itself: asking containerd for the metrics of
// every task (TaskService.Metrics) has containerd ask each task's shim over ttrpc,
// one after the other, and each shim read every file of every controller. Measured
// here (cgroup v1, 300 containers): ~5 ms a container, 1.5 s a stats call, as much as
// containerd's own CRI takes. Opening, reading and closing one cgroup file costs
// ~30 µs on these machines, reading a file kept open (pread at offset 0) ~5 µs: the
// reader keeps the dozen files a sample needs open, so a container costs ~60 µs.
// Tasks whose cgroup is not on this host (a VM-based runtime) are still asked of
// containerd.

// errNoCgroup: the cgroup does not exist (not created yet, or removed).
var errNoCgroup = errors.New("no such cgroup")

// cgroupReader samples tasks from their cgroup files. It is not safe for concurrent
// use (the collector calls it under sampleMu).
type cgroupReader struct {
	root   string // where the cgroup file system is mounted
	v2     bool
	budget int // files it may keep open; past it, files are opened for each read
	open   int
	groups map[string]*cgroupGroup // by task (target) ID
	buf    []byte
	// devices names block devices by major:minor, as the shims' metrics do on v1.
	devices map[[2]uint64]string
}

// cgroupGroup is one task's cgroup: its directory and the files held open.
type cgroupGroup struct {
	dir     string // relative to a hierarchy's root
	files   map[string]*os.File
	missing map[string]bool // files this kernel or configuration does not have
}

func newCgroupReader(root string, v2 bool, budget int) *cgroupReader {
	return &cgroupReader{root: root, v2: v2, budget: budget, groups: map[string]*cgroupGroup{}, buf: make([]byte, 16<<10)}
}

// fileBudget is how many cgroup files the collector may keep open: a quarter of the
// process's limit on open files.
func fileBudget() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(min(lim.Cur/4, 1<<20))
}

// begin starts a round of samples: block device names are read again (v1).
func (r *cgroupReader) begin() {
	if r.v2 {
		return
	}
	r.devices = map[[2]uint64]string{}
	b, err := os.ReadFile("/proc/partitions")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 {
			continue
		}
		major, err1 := strconv.ParseUint(f[0], 10, 64)
		minor, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			r.devices[[2]uint64{major, minor}] = f[3]
		}
	}
}

// sample reads task id's cgroup, named by cgroupsPath (asked only the first time the
// task is seen, in either cgroup driver's form). errNoCgroup: there is none.
func (r *cgroupReader) sample(id string, cgroupsPath func() string, at time.Time) (taskSample, error) {
	g := r.groups[id]
	if g == nil {
		p := cgroupsPath()
		if p == "" {
			return taskSample{}, errNoCgroup
		}
		g = &cgroupGroup{dir: filepath.Clean("/" + cgroups.Dir(p)), files: map[string]*os.File{}, missing: map[string]bool{}}
		r.groups[id] = g
	}
	var s taskSample
	var err error
	if r.v2 {
		s, err = r.sampleV2(g, at)
	} else {
		s, err = r.sampleV1(g, at)
	}
	if err != nil {
		r.close(g) // its path is kept: the cgroup may come (a task being created)
	}
	return s, err
}

// forget closes the files of tasks for which keep is false.
func (r *cgroupReader) forget(keep func(id string) bool) {
	for id := range r.groups {
		if !keep(id) {
			r.drop(id)
		}
	}
}

func (r *cgroupReader) drop(id string) {
	if g := r.groups[id]; g != nil {
		r.close(g)
		delete(r.groups, id)
	}
}

// close closes the files of g and forgets which were missing.
func (r *cgroupReader) close(g *cgroupGroup) {
	for name, f := range g.files {
		_ = f.Close()
		r.open--
		delete(g.files, name)
	}
	clear(g.missing)
}

// read returns the content of a cgroup file of g (a v1 file is found in the
// hierarchy of the controller its name begins with). os.ErrNotExist: the file does
// not exist; errNoCgroup: the cgroup was removed while the file was open.
func (r *cgroupReader) read(g *cgroupGroup, name string) (string, error) {
	if g.missing[name] {
		return "", os.ErrNotExist
	}
	f := g.files[name]
	if f == nil {
		path := filepath.Join(r.root, g.dir, name)
		if !r.v2 {
			controller, _, _ := strings.Cut(name, ".")
			path = filepath.Join(r.root, controller, g.dir, name)
		}
		var err error
		if f, err = os.Open(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				// The kernel has no such file where the directory exists; else the
				// cgroup is gone, or not in this (v1) controller's hierarchy yet.
				if _, derr := os.Stat(filepath.Dir(path)); derr == nil {
					g.missing[name] = true
				}
				return "", os.ErrNotExist
			}
			return "", err
		}
		if r.open < r.budget {
			g.files[name] = f
			r.open++
		} else {
			defer f.Close()
		}
	}
	for {
		n, err := f.ReadAt(r.buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, syscall.ENODEV) || errors.Is(err, os.ErrNotExist) {
				return "", errNoCgroup // removed while open
			}
			if errors.Is(err, syscall.EOPNOTSUPP) { // PSI off in this kernel
				g.missing[name] = true
				return "", os.ErrNotExist
			}
			return "", fmt.Errorf("reading %s: %w", f.Name(), err)
		}
		if n < len(r.buf) {
			return string(r.buf[:n]), nil
		}
		r.buf = make([]byte, 2*len(r.buf))
	}
}

// files reads the files of one cgroup for one sample, gathering the errors: a file
// the kernel does not have reads as empty, a missing cgroup is errNoCgroup.
type files struct {
	r    *cgroupReader
	g    *cgroupGroup
	errs []error
}

// text is a file's content; ok is false if it could not be read (the kernel has no
// such file, or the error is kept).
func (f *files) text(name string) (s string, ok bool) {
	s, err := f.r.read(f.g, name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		f.errs = append(f.errs, err)
	}
	return s, err == nil
}

func (f *files) value(name string) uint64 {
	s, _ := f.text(name)
	return parseValue(s)
}

// keyed reads a flat-keyed file ("key value" lines); nil if there is none.
func (f *files) keyed(name string) map[string]uint64 {
	if s, ok := f.text(name); ok {
		return parseKeyed(s)
	}
	return nil
}

// psi reads a *.pressure file; nil without PSI.
func (f *files) psi(name string) *cg2.PSIStats {
	s, _ := f.text(name)
	return parsePSI(s)
}

// gone is the error of a cgroup whose first file could not be read.
func (f *files) gone() error {
	if err := f.err(); err != nil {
		return err
	}
	return errNoCgroup
}

func (f *files) err() error { return errors.Join(f.errs...) }

func (r *cgroupReader) sampleV1(g *cgroupGroup, at time.Time) (taskSample, error) {
	// cpuacct.usage first: whether the cgroup exists is told by it.
	f := &files{r: r, g: g}
	usage, ok := f.text("cpuacct.usage")
	if !ok {
		return taskSample{}, f.gone()
	}
	// cpuacct.stat counts in USER_HZ ticks, 100 a second on Linux.
	const tick = uint64(time.Second / 100)
	ticks, cpu := f.keyed("cpuacct.stat"), f.keyed("cpu.stat")
	m := &cg1.Metrics{CPU: &cg1.CPUStat{
		Usage:      &cg1.CPUUsage{Total: parseValue(usage), User: ticks["user"] * tick, Kernel: ticks["system"] * tick},
		Throttling: &cg1.Throttle{Periods: cpu["nr_periods"], ThrottledPeriods: cpu["nr_throttled"], ThrottledTime: cpu["throttled_time"]},
	}}
	if mem := f.keyed("memory.stat"); mem != nil {
		m.Memory = &cg1.MemoryStat{
			TotalRSS: mem["total_rss"], TotalCache: mem["total_cache"], TotalMappedFile: mem["total_mapped_file"],
			TotalActiveFile: mem["total_active_file"], TotalInactiveFile: mem["total_inactive_file"],
			TotalPgFault: mem["total_pgfault"], TotalPgMajFault: mem["total_pgmajfault"],
			Usage: &cg1.MemoryEntry{
				Usage: f.value("memory.usage_in_bytes"), Max: f.value("memory.max_usage_in_bytes"),
				Failcnt: f.value("memory.failcnt"), Limit: f.value("memory.limit_in_bytes"),
			},
			Kernel: &cg1.MemoryEntry{Usage: f.value("memory.kmem.usage_in_bytes")},
			Swap:   &cg1.MemoryEntry{Usage: f.value("memory.memsw.usage_in_bytes")},
		}
		m.MemoryOomControl = &cg1.MemoryOomControl{OomKill: f.keyed("memory.oom_control")["oom_kill"]}
	}
	if cur, ok := f.text("pids.current"); ok {
		m.Pids = &cg1.PidsStat{Current: parseValue(cur), Limit: f.value("pids.max")}
	}
	// Bytes and operations per device: the CFQ scheduler's recursive counters where
	// the kernel has them, else the throttling layer's (as the shims do).
	if ops, ok := f.text("blkio.io_serviced_recursive"); ok {
		bytes, _ := f.text("blkio.io_service_bytes_recursive")
		m.Blkio = &cg1.BlkIOStat{IoServiceBytesRecursive: r.parseBlkio(bytes), IoServicedRecursive: r.parseBlkio(ops)}
	} else if ops, ok := f.text("blkio.throttle.io_serviced"); ok {
		bytes, _ := f.text("blkio.throttle.io_service_bytes")
		m.Blkio = &cg1.BlkIOStat{IoServiceBytesRecursive: r.parseBlkio(bytes), IoServicedRecursive: r.parseBlkio(ops)}
	}
	if err := f.err(); err != nil {
		return taskSample{}, err
	}
	return fromV1(m, at), nil
}

func (r *cgroupReader) sampleV2(g *cgroupGroup, at time.Time) (taskSample, error) {
	f := &files{r: r, g: g}
	c := f.keyed("cpu.stat")
	if c == nil {
		return taskSample{}, f.gone()
	}
	m := &cg2.Metrics{CPU: &cg2.CPUStat{
		UsageUsec: c["usage_usec"], UserUsec: c["user_usec"], SystemUsec: c["system_usec"],
		NrPeriods: c["nr_periods"], NrThrottled: c["nr_throttled"], ThrottledUsec: c["throttled_usec"],
		PSI: f.psi("cpu.pressure"),
	}}
	if mem := f.keyed("memory.stat"); mem != nil {
		m.Memory = &cg2.MemoryStat{
			Anon: mem["anon"], File: mem["file"], FileMapped: mem["file_mapped"],
			ActiveFile: mem["active_file"], InactiveFile: mem["inactive_file"],
			KernelStack: mem["kernel_stack"], Slab: mem["slab"],
			Pgfault: mem["pgfault"], Pgmajfault: mem["pgmajfault"],
			Usage: f.value("memory.current"), UsageLimit: f.value("memory.max"), MaxUsage: f.value("memory.peak"),
			SwapUsage: f.value("memory.swap.current"), SwapLimit: f.value("memory.swap.max"),
			PSI: f.psi("memory.pressure"),
		}
		m.MemoryEvents = &cg2.MemoryEvents{OomKill: f.keyed("memory.events")["oom_kill"]}
	}
	if cur, ok := f.text("pids.current"); ok {
		m.Pids = &cg2.PidsStat{Current: parseValue(cur), Limit: f.value("pids.max")}
	}
	ioStat, _ := f.text("io.stat")
	m.Io = &cg2.IOStat{Usage: parseIOStat(ioStat), PSI: f.psi("io.pressure")}
	if err := f.err(); err != nil {
		return taskSample{}, err
	}
	return fromV2(m, at), nil
}

// parseBlkio reads "major:minor Op value" lines (the Total line is skipped).
func (r *cgroupReader) parseBlkio(s string) []*cg1.BlkIOEntry {
	var out []*cg1.BlkIOEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		major, err1 := strconv.ParseUint(maj, 10, 64)
		minor, err2 := strconv.ParseUint(min, 10, 64)
		value, err3 := strconv.ParseUint(f[2], 10, 64)
		if !ok || err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out = append(out, &cg1.BlkIOEntry{Op: f[1], Device: r.devices[[2]uint64{major, minor}], Major: major, Minor: minor, Value: value})
	}
	return out
}

// parseValue reads a one-number cgroup file; "max" (no limit) is the largest number.
func parseValue(s string) uint64 {
	s = strings.TrimSpace(s)
	if s == "max" {
		return math.MaxUint64
	}
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// parseKeyed reads "key value" lines.
func parseKeyed(s string) map[string]uint64 {
	out := make(map[string]uint64, 48)
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// parsePSI reads a *.pressure file: "some|full avg10=… avg60=… avg300=… total=…".
func parsePSI(s string) *cg2.PSIStats {
	if s == "" {
		return nil
	}
	out := &cg2.PSIStats{}
	for _, line := range strings.Split(s, "\n") {
		kind, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		d := &cg2.PSIData{}
		for _, kv := range strings.Fields(rest) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "avg10":
				d.Avg10, _ = strconv.ParseFloat(v, 64)
			case "avg60":
				d.Avg60, _ = strconv.ParseFloat(v, 64)
			case "avg300":
				d.Avg300, _ = strconv.ParseFloat(v, 64)
			case "total":
				d.Total, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		switch kind {
		case "some":
			out.Some = d
		case "full":
			out.Full = d
		}
	}
	return out
}

// parseIOStat reads io.stat: "major:minor rbytes=… wbytes=… rios=… wios=… …".
func parseIOStat(s string) []*cg2.IOEntry {
	var out []*cg2.IOEntry
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		maj, min, ok := strings.Cut(f[0], ":")
		if !ok {
			continue
		}
		e := &cg2.IOEntry{}
		var err1, err2 error
		e.Major, err1 = strconv.ParseUint(maj, 10, 64)
		e.Minor, err2 = strconv.ParseUint(min, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseUint(v, 10, 64)
			switch k {
			case "rbytes":
				e.Rbytes = n
			case "wbytes":
				e.Wbytes = n
			case "rios":
				e.Rios = n
			case "wios":
				e.Wios = n
			}
		}
		out = append(out, e)
	}
	return out
}
