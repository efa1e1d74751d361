// Command bench runs keelson and containerd's built-in CRI plugin side by side on the
// same machine — the same containerd binary, runc, CNI plugins and images from a
// local registry — drives both through the same CRI client with the same workloads,
// interleaving their rounds so machine noise hits both alike, and prints p50/p95/p99
// per operation with the keelson/containerd ratio (also written as JSON).
//
//	go run ./hack/bench [--rounds 30] [--list-pods 110] [--json bench.json] [--png bench.png] [--cycles 1000]
//
// Needs root and hack/install-deps.sh. `--smoke` runs a few iterations only.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

const prefix = "/opt/keelson"

var (
	rounds       = flag.Int("rounds", 30, "iterations of each single-pod workload per runtime")
	listPods     = flag.Int("list-pods", 110, "pods (with 3 containers each) present for the List* workload (kubelet's max-pods default)")
	idle         = flag.Duration("idle", time.Minute, "how long the runtimes sit idle with the List* pods, to measure their CPU use")
	cycles       = flag.Int("cycles", 0, "pod create/delete cycles run on keelson last, followed by `keelson doctor`")
	pngOut       = flag.String("png", "", "draw the p50 latencies by operation as a PNG chart here")
	parallel     = flag.Int("parallel-pods", 20, "pods created at once by 4 clients")
	jsonOut      = flag.String("json", "", "write the results as JSON here")
	smoke        = flag.Bool("smoke", false, "a few iterations only (for make test)")
	keelson      = flag.String("keelson", "", "keelson binary (default: build ./cmd/agent)")
	noLogs       = flag.Bool("no-logs", false, "containers without a log path (isolates the cost of log copying)")
	only         = flag.String("only", "", "comma-separated workloads to run (pods, images, containers, podcontainer, parallel, lists); empty: all. For measuring one change.")
	containerd16 = flag.String("containerd16", "/usr/bin/containerd", "Debian's containerd 1.6 for a third column (its CRI plugin); empty: none")
)

// samples holds latencies by runtime and operation.
type samples struct {
	mu sync.Mutex
	m  map[string]map[string][]time.Duration
}

func (s *samples) add(rt, op string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[rt] == nil {
		s.m[rt] = map[string][]time.Duration{}
	}
	s.m[rt][op] = append(s.m[rt][op], d)
}

func (s *samples) time(rt, op string, fn func() error) error {
	start := time.Now()
	err := fn()
	if err == nil {
		s.add(rt, op, time.Since(start))
	}
	return err
}

func main() {
	flag.Parse()
	if *smoke {
		*rounds, *listPods, *parallel, *idle = 2, 5, 4, time.Second
		*cycles = min(*cycles, 3)
	}
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("needs root"))
	}
	base, err := os.MkdirTemp("/tmp", "kbench-")
	check(err)
	defer runCleanups()
	onExit(func() { cleanupDir(base) })
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		fmt.Fprintln(os.Stderr, "bench: interrupted; removing what it made")
		stopRun()
		time.Sleep(2 * time.Second) // calls in flight return
		runCleanups()
		os.Exit(130)
	}()

	bin := *keelson
	if bin == "" {
		bin = filepath.Join(base, "bin", "keelson")
		for _, b := range [][2]string{{bin, "./cmd/agent"}, {filepath.Join(base, "bin", "keelson-logger"), "./cmd/logger"}} {
			out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
			if err != nil {
				fail(fmt.Errorf("building %s: %v\n%s", b[1], err, out))
			}
		}
	}
	reg, err := registry.Start()
	check(err)
	onExit(func() { _ = reg.Close() })
	imgs, err := images.All()
	check(err)
	check(reg.PushAll(imgs))
	benchImgs, err := images.BenchImages()
	check(err)
	check(reg.PushAll(benchImgs))

	var rts []*runtime
	start := func(r *runtime, err error) {
		if r != nil {
			onExit(r.teardown)
		}
		check(err)
		rts = append(rts, r)
	}
	start(startKeelson(base, bin, reg))
	k := rts[0]
	start(startContainerdCRI(base, reg))
	if *containerd16 != "" {
		if _, err := os.Stat(*containerd16); err == nil {
			start(startContainerd16CRI(base, *containerd16, reg))
		} else {
			fmt.Fprintf(os.Stderr, "bench: no %s (apt install containerd): the containerd 1.6 column is left out\n", *containerd16)
		}
	}
	for _, r := range rts {
		for _, ref := range []string{images.Busybox, images.Pause} {
			_, err := r.img.PullImage(context.Background(), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			check(err)
		}
	}

	res := &samples{m: map[string]map[string][]time.Duration{}}
	cost := map[string]map[string]any{}
	for _, r := range rts {
		rss, cpu := rssAndCPU(r.costPids())
		self, _ := rssAndCPU(r.selfPids())
		cost[r.name] = map[string]any{"idle_rss_bytes": rss, "idle_self_rss_bytes": self, "cpu_before": cpu.String()}
	}

	// Warm up both (first pod pays for caches on either side).
	for _, r := range rts {
		check(podLifecycle(r, res, "warmup", false))
		check(podLifecycle(r, res, "warmup", true))
	}
	res.m = map[string]map[string][]time.Duration{}

	for i := range *rounds {
		order := rotate(rts, i)
		for _, r := range order {
			if want("pods") {
				check(podLifecycle(r, res, "", false))
				check(podLifecycle(r, res, "", true))
			}
			if want("images") {
				check(imageLifecycle(r, res, images.BenchSmall, "1 MiB"))
				if i%3 == 0 {
					check(imageLifecycle(r, res, images.BenchLarge, "50 MiB, 5 layers"))
				}
			}
			if want("containers") {
				check(containerLifecycle(r, res, false))
				check(containerLifecycle(r, res, true))
			}
			if want("podcontainer") {
				check(podWithContainer(r, res))
			}
		}
	}
	for i := range max(1, *rounds/10) {
		order := rotate(rts, i)
		for _, r := range order {
			if want("parallel") {
				check(parallelPods(r, res, *parallel))
			}
		}
	}
	if want("lists") {
		for _, r := range rts {
			check(populate(r, *listPods))
		}
		idleCPU(rts, cost)
		for i := range *rounds * 10 {
			order := rotate(rts, i)
			for _, r := range order {
				check(lists(r, res))
			}
		}
	}
	for _, r := range rts {
		rss, cpu := rssAndCPU(r.costPids())
		self, _ := rssAndCPU(r.selfPids())
		cost[r.name]["loaded_rss_bytes"] = rss
		cost[r.name]["loaded_self_rss_bytes"] = self
		cost[r.name]["cpu_after"] = cpu.String()
	}
	for _, r := range rts {
		r.cleanupPods()
	}
	if *cycles > 0 {
		check(churn(k, *cycles, cost))
	}
	report(res, cost, rts)
}

// idleCPU measures the CPU the runtimes use while idle with the List* pods present
// (background stats sampling, housekeeping), all of them over the same window, from
// the processes there at both ends (one that came or went would count its whole life).
func idleCPU(rts []*runtime, cost map[string]map[string]any) {
	perPid := func(pids []int) map[int]time.Duration {
		m := map[int]time.Duration{}
		for _, pid := range pids {
			_, m[pid] = rssAndCPU([]int{pid})
		}
		return m
	}
	before := map[string]map[int]time.Duration{}
	for _, r := range rts {
		before[r.name] = perPid(r.costPids())
	}
	select {
	case <-time.After(*idle):
	case <-runCtx.Done():
	}
	for _, r := range rts {
		var used time.Duration
		for pid, cpu := range perPid(r.costPids()) {
			if was, ok := before[r.name][pid]; ok {
				used += cpu - was
			}
		}
		cost[r.name]["idle_cpu_per_minute"] = (used * time.Minute / *idle).Round(time.Millisecond).String()
	}
}

// churn runs n pod create/delete cycles (a pod with a container, started, stopped,
// removed) on r, then asks `keelson doctor` whether anything was left behind.
func churn(r *runtime, n int, cost map[string]map[string]any) error {
	start := time.Now()
	for i := range n {
		cfg := r.podConfig(uniq("cycle"))
		pod, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
		cr, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("c"), SandboxConfig: cfg})
		if err == nil {
			_, err = r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
		}
		if err == nil {
			_, err = r.rt.StopPodSandbox(bg(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		}
		if err == nil {
			_, err = r.rt.RemovePodSandbox(bg(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
		}
		if err != nil {
			return fmt.Errorf("cycle %d: %w", i, err)
		}
	}
	took := time.Since(start)
	out, err := r.doctor()
	cost[r.name]["cycles"] = n
	cost[r.name]["cycles_took"] = took.Round(time.Second).String()
	cost[r.name]["doctor_after_cycles"] = strings.ReplaceAll(strings.TrimSpace(out), "\n", " / ")
	if err != nil {
		return fmt.Errorf("keelson doctor after %d cycles: %v\n%s", n, err, out)
	}
	return nil
}

// podConfig is a pod like kubelet sends: metadata, hostname, DNS, log dir, cgroup parent.
func (r *runtime) podConfig(name string) *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		Hostname:     name,
		LogDirectory: filepath.Join(r.dir, "logs", name),
		DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"bench.svc.cluster.local"}},
		Labels:       map[string]string{"bench": "yes"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent:    r.cgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}},
		},
	}
}

func ctrConfig(name string) *runtimeapi.ContainerConfig {
	c := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: images.Busybox},
		Command:  []string{"sleep", "100000"},
		LogPath:  name + ".log",
	}
	if *noLogs {
		c.LogPath = ""
	}
	return c
}

var seq struct {
	sync.Mutex
	n int
}

func uniq(prefix string) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("%s-%d", prefix, seq.n)
}

// runCtx is the context of every workload call; an interrupt cancels it, so the
// workloads stop creating pods before the clean-up removes them.
var runCtx, stopRun = context.WithCancel(context.Background())

func bg() context.Context { return runCtx }

func podLifecycle(r *runtime, s *samples, opPrefix string, pause bool) error {
	cfg := r.podConfig(uniq("pod"))
	suffix := ""
	if pause {
		// Containers sharing one PID namespace: keelson runs a pause process too.
		cfg.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_POD
		suffix = " (pause)"
	}
	var id string
	if err := s.time(r.name, opPrefix+"RunPodSandbox"+suffix, func() error {
		resp, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err == nil {
			id = resp.PodSandboxId
		}
		return err
	}); err != nil {
		return fmt.Errorf("%s RunPodSandbox: %w", r.name, err)
	}
	if err := s.time(r.name, opPrefix+"PodSandboxStatus"+suffix, func() error {
		_, err := r.rt.PodSandboxStatus(bg(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
		return err
	}); err != nil {
		return err
	}
	if err := s.time(r.name, opPrefix+"StopPodSandbox"+suffix, func() error {
		_, err := r.rt.StopPodSandbox(bg(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		return err
	}); err != nil {
		return err
	}
	return s.time(r.name, opPrefix+"RemovePodSandbox"+suffix, func() error {
		_, err := r.rt.RemovePodSandbox(bg(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		return err
	})
}

// imageLifecycle pulls an image no other image shares layers with, asks for its
// status and removes it (what kubelet's image manager and GC do).
func imageLifecycle(r *runtime, s *samples, ref, what string) error {
	spec := &runtimeapi.ImageSpec{Image: ref}
	if err := s.time(r.name, "PullImage ("+what+")", func() error {
		_, err := r.img.PullImage(bg(), &runtimeapi.PullImageRequest{Image: spec})
		return err
	}); err != nil {
		return fmt.Errorf("%s PullImage %s: %w", r.name, ref, err)
	}
	if err := s.time(r.name, "ImageStatus", func() error {
		st, err := r.img.ImageStatus(bg(), &runtimeapi.ImageStatusRequest{Image: spec})
		if err == nil && st.GetImage() == nil {
			err = fmt.Errorf("ImageStatus: %s not found after its pull", ref)
		}
		return err
	}); err != nil {
		return err
	}
	return s.time(r.name, "RemoveImage ("+what+")", func() error {
		_, err := r.img.RemoveImage(bg(), &runtimeapi.RemoveImageRequest{Image: spec})
		return err
	})
}

// containerLifecycle measures one container's lifecycle in a pod: the pod's first
// container, or (second) one added next to a container already running.
func containerLifecycle(r *runtime, s *samples, second bool) error {
	cfg := r.podConfig(uniq("cpod"))
	pod, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return err
	}
	defer r.removePod(pod.PodSandboxId)
	suffix := ""
	if second {
		suffix = " (2nd in pod)"
		first, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("first"), SandboxConfig: cfg})
		if err != nil {
			return err
		}
		if _, err := r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: first.ContainerId}); err != nil {
			return err
		}
	}
	var id string
	steps := []struct {
		op string
		fn func() error
	}{
		{"CreateContainer", func() error {
			resp, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("c"), SandboxConfig: cfg})
			if err == nil {
				id = resp.ContainerId
			}
			return err
		}},
		{"StartContainer", func() error {
			_, err := r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: id})
			return err
		}},
		{"ContainerStatus", func() error {
			_, err := r.rt.ContainerStatus(bg(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
			return err
		}},
		{"StopContainer", func() error {
			_, err := r.rt.StopContainer(bg(), &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: 0})
			return err
		}},
		{"RemoveContainer", func() error {
			_, err := r.rt.RemoveContainer(bg(), &runtimeapi.RemoveContainerRequest{ContainerId: id})
			return err
		}},
	}
	createStart := time.Now()
	for _, st := range steps {
		if err := s.time(r.name, st.op+suffix, st.fn); err != nil {
			return fmt.Errorf("%s %s: %w", r.name, st.op, err)
		}
		if st.op == "StartContainer" {
			s.add(r.name, "Create+StartContainer"+suffix, time.Since(createStart))
		}
	}
	return nil
}

// podWithContainer is what kubelet does for a new pod: sandbox, create, start.
func podWithContainer(r *runtime, s *samples) error {
	cfg := r.podConfig(uniq("npod"))
	start := time.Now()
	pod, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return err
	}
	defer r.removePod(pod.PodSandboxId)
	cr, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("c"), SandboxConfig: cfg})
	if err != nil {
		return err
	}
	if _, err := r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		return err
	}
	s.add(r.name, "Pod+Container (new pod)", time.Since(start))
	return nil
}

// parallelPods starts n pods with one container each from 4 clients at once.
func parallelPods(r *runtime, s *samples, n int) error {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan string, n)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += 4 {
				t0 := time.Now()
				cfg := r.podConfig(uniq("ppod"))
				pod, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
				if err != nil {
					errs <- err
					return
				}
				ids <- pod.PodSandboxId
				cr, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig("c"), SandboxConfig: cfg})
				if err == nil {
					_, err = r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
				}
				if err != nil {
					errs <- err
					return
				}
				s.add(r.name, fmt.Sprintf("Pod+Container, %d at once (each)", n), time.Since(t0))
			}
		}()
	}
	wg.Wait()
	s.add(r.name, fmt.Sprintf("%d pods from 4 clients (all)", n), time.Since(start))
	close(errs)
	close(ids)
	for id := range ids {
		r.removePod(id)
	}
	for err := range errs {
		return err
	}
	return nil
}

// populate creates pods with 3 containers each and leaves them running.
func populate(r *runtime, pods int) error {
	var wg sync.WaitGroup
	errs := make(chan error, pods)
	sem := make(chan struct{}, 4)
	for range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg := r.podConfig(uniq("lpod"))
			pod, err := r.rt.RunPodSandbox(bg(), &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				errs <- err
				return
			}
			for _, n := range []string{"a", "b", "c"} {
				cr, err := r.rt.CreateContainer(bg(), &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: ctrConfig(n), SandboxConfig: cfg})
				if err == nil {
					_, err = r.rt.StartContainer(bg(), &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("%s populate: %w", r.name, err)
	}
	return nil
}

func lists(r *runtime, s *samples) error {
	for _, st := range []struct {
		op string
		fn func() error
	}{
		{"ListPodSandbox", func() error { _, err := r.rt.ListPodSandbox(bg(), &runtimeapi.ListPodSandboxRequest{}); return err }},
		{"ListContainers", func() error { _, err := r.rt.ListContainers(bg(), &runtimeapi.ListContainersRequest{}); return err }},
		{"ListContainerStats", func() error {
			_, err := r.rt.ListContainerStats(bg(), &runtimeapi.ListContainerStatsRequest{})
			return err
		}},
		{"ImageFsInfo", func() error { _, err := r.img.ImageFsInfo(bg(), &runtimeapi.ImageFsInfoRequest{}); return err }},
	} {
		if err := s.time(r.name, st.op+fmt.Sprintf(" (%d pods)", *listPods), st.fn); err != nil {
			return fmt.Errorf("%s %s: %w", r.name, st.op, err)
		}
	}
	return nil
}

func (r *runtime) removePod(id string) {
	ctx := context.Background() // also after an interrupt
	_, _ = r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	_, _ = r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
}

func (r *runtime) cleanupPods() {
	if r.rt == nil {
		return
	}
	resp, err := r.rt.ListPodSandbox(context.Background(), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, p := range resp.Items {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); defer func() { <-sem }(); r.removePod(p.Id) }()
	}
	wg.Wait()
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

type row struct {
	Op string `json:"op"`
	N  int    `json:"n"`
	// Milliseconds by runtime and percentile; ratios keelson / each other runtime.
	Ms     map[string]map[string]float64 `json:"ms"`
	Ratios map[string]map[string]float64 `json:"ratio"`
}

// rotate is the order of round i: each runtime goes first in turn, so machine noise
// hits all alike.
func rotate(rts []*runtime, i int) []*runtime {
	n := i % len(rts)
	return append(append([]*runtime{}, rts[n:]...), rts[:n]...)
}

func report(s *samples, cost map[string]map[string]any, rts []*runtime) {
	kn := rts[0].name
	var ops []string
	for op := range s.m[kn] {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	short := map[string]string{"keelson": "k", "containerd": "c", "containerd-1.6": "c16"}
	header := fmt.Sprintf("%-40s %4s | %9s %9s %9s", "operation", "n", "k p50", "k p95", "k p99")
	for _, r := range rts[1:] {
		header += fmt.Sprintf(" | %9s %9s %6s %6s", short[r.name]+" p50", short[r.name]+" p95", "p50 ×", "p95 ×")
	}
	fmt.Println(header)
	fmt.Println(strings.Repeat("-", len(header)))
	var rows []row
	for _, op := range ops {
		r := row{Op: op, N: len(s.m[kn][op]), Ms: map[string]map[string]float64{}, Ratios: map[string]map[string]float64{}}
		for _, rt := range rts {
			r.Ms[rt.name] = map[string]float64{}
			for _, p := range []struct {
				name string
				q    float64
			}{{"p50", .5}, {"p95", .95}, {"p99", .99}} {
				r.Ms[rt.name][p.name] = ms(percentile(s.m[rt.name][op], p.q))
			}
		}
		k := r.Ms[kn]
		line := fmt.Sprintf("%-40s %4d | %8.2fms %8.2fms %8.2fms", op, r.N, k["p50"], k["p95"], k["p99"])
		for _, rt := range rts[1:] {
			o := r.Ms[rt.name]
			r.Ratios[rt.name] = map[string]float64{}
			for _, p := range []string{"p50", "p95", "p99"} {
				if o[p] > 0 {
					r.Ratios[rt.name][p] = k[p] / o[p]
				}
			}
			line += fmt.Sprintf(" | %8.2fms %8.2fms %6.2f %6.2f", o["p50"], o["p95"], r.Ratios[rt.name]["p50"], r.Ratios[rt.name]["p95"])
		}
		rows = append(rows, r)
		fmt.Println(line)
	}
	fmt.Println()
	mib := func(v any) float64 { return float64(v.(int64)) / (1 << 20) }
	for _, rt := range rts {
		name := rt.name
		fmt.Printf("%-14s RSS idle %6.1f MiB (CRI server alone %6.1f), with %d pods %6.1f MiB (alone %6.1f); CPU time %s → %s\n", name,
			mib(cost[name]["idle_rss_bytes"]), mib(cost[name]["idle_self_rss_bytes"]), *listPods,
			mib(cost[name]["loaded_rss_bytes"]), mib(cost[name]["loaded_self_rss_bytes"]),
			cost[name]["cpu_before"], cost[name]["cpu_after"])
	}
	fmt.Println("(keelson's totals include the containerd it supervises; containerd's CRI plugin lives inside containerd.)")
	fmt.Printf("CPU while idle with %d pods, per minute:", *listPods)
	for _, rt := range rts {
		fmt.Printf(" %s %v;", rt.name, cost[rt.name]["idle_cpu_per_minute"])
	}
	fmt.Println()
	if n, ok := cost[kn]["cycles"]; ok {
		fmt.Printf("%d pod create/delete cycles on keelson in %v; keelson doctor then: %s\n", n, cost[kn]["cycles_took"], cost[kn]["doctor_after_cycles"])
	}
	if *pngOut != "" {
		check(chart(*pngOut, rows, rts))
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"operations": rows, "cost": cost, "machine": machine()}, "", "  ")
		check(os.WriteFile(*jsonOut, b, 0o644))
	}
}

func machine() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	model := ""
	cores := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") && model == "" {
			model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
		}
		if strings.HasPrefix(l, "processor") {
			cores++
		}
	}
	return fmt.Sprintf("%s, %d cores", model, cores)
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	runCleanups()
	os.Exit(1)
}

var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

// onExit registers f to run when the bench ends, fails or is interrupted (the last
// registered first), so no run leaves processes, mounts, bridges or cgroups behind.
func onExit(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

// runCleanups runs what onExit registered. A second caller (the main goroutine
// failing while an interrupt cleans up) waits for the first to finish.
// want tells whether workload w is to run (--only).
func want(w string) bool {
	return *only == "" || slices.Contains(strings.Split(*only, ","), w)
}

func runCleanups() {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}
