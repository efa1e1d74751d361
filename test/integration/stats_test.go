package integration

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// statsTestKeelson runs keelson sampling stats every second (the default is 10s).
func statsTestKeelson(t *testing.T, bin string) *harness.Keelson {
	t.Helper()
	harness.RequireRoot(t)
	k := startWithRegistry(t, reg, func(o *harness.Options) { o.ContainerdBinary = bin; o.StatsInterval = time.Second })
	mustPull(t, k, images.Busybox)
	return k
}

// eventually polls cond until it holds or the deadline passes; it returns the last
// description of what was seen, for the failure message.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ctrStats(t *testing.T, k *harness.Keelson, id string) *runtimeapi.ContainerStats {
	t.Helper()
	resp, err := k.Runtime.ContainerStats(harness.Ctx(t), &runtimeapi.ContainerStatsRequest{ContainerId: id})
	if err != nil {
		t.Fatalf("ContainerStats %s: %v", id, err)
	}
	return resp.Stats
}

func listCtrStats(t *testing.T, k *harness.Keelson, f *runtimeapi.ContainerStatsFilter) map[string]*runtimeapi.ContainerStats {
	t.Helper()
	resp, err := k.Runtime.ListContainerStats(harness.Ctx(t), &runtimeapi.ListContainerStatsRequest{Filter: f})
	if err != nil {
		t.Fatalf("ListContainerStats: %v", err)
	}
	out := map[string]*runtimeapi.ContainerStats{}
	for _, s := range resp.Stats {
		out[s.GetAttributes().GetId()] = s
	}
	return out
}

func podStats(t *testing.T, k *harness.Keelson, id string) *runtimeapi.PodSandboxStats {
	t.Helper()
	resp, err := k.Runtime.ListPodSandboxStats(harness.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{Filter: &runtimeapi.PodSandboxStatsFilter{Id: id}})
	if err != nil {
		t.Fatalf("ListPodSandboxStats: %v", err)
	}
	if len(resp.Stats) != 1 {
		t.Fatalf("ListPodSandboxStats for %s: %d pods", id, len(resp.Stats))
	}
	return resp.Stats[0]
}

func TestStats(t *testing.T) {
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) { statsScenario(t, bin) })
	}
}

func statsScenario(t *testing.T, bin string) {
	k := statsTestKeelson(t, bin)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "stats")
	burn := p.run(t, ctrConfig("burn", images.Busybox, "sh", "-c", "while :; do :; done"))
	memCfg := ctrConfig("mem", images.Busybox, "sh", "-c",
		`while [ ! -e /tmp/go ]; do sleep 0.1; done; x=$(head -c 40000000 /dev/zero | tr '\0' a); echo allocated; while :; do sleep 1; done`)
	memCfg.Linux.Resources = &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 256 << 20}
	mem := p.run(t, memCfg)
	disk := p.run(t, ctrConfig("disk", images.Busybox, "sleep", "100000"))

	// CPU: the burner's cumulative time grows and its rate shows a busy core.
	first := ctrStats(t, k, burn)
	if first.GetCpu().GetUsageCoreNanoSeconds() == nil || first.GetAttributes().GetMetadata().GetName() != "burn" {
		t.Fatalf("first stats of the burner: %v", first)
	}
	eventually(t, "burner's CPU grows and has a rate", 30*time.Second, func() (bool, string) {
		s := ctrStats(t, k, burn).GetCpu()
		ok := s.GetUsageCoreNanoSeconds().GetValue() > first.GetCpu().GetUsageCoreNanoSeconds().GetValue() &&
			s.GetUsageNanoCores().GetValue() > 2e8 && s.GetTimestamp() > first.GetCpu().GetTimestamp()
		return ok, s.String()
	})

	// Memory: the working set grows by the 40 MB the shell allocates when told to.
	var before uint64
	eventually(t, "mem container sampled", 30*time.Second, func() (bool, string) {
		m := ctrStats(t, k, mem).GetMemory()
		before = m.GetWorkingSetBytes().GetValue()
		return m.GetWorkingSetBytes() != nil, m.String()
	})
	execSync(t, k, mem, 10, "touch", "/tmp/go")
	eventually(t, "mem container's working set grows by 30 MB", 60*time.Second, func() (bool, string) {
		m := ctrStats(t, k, mem).GetMemory()
		ws := m.GetWorkingSetBytes().GetValue()
		return ws >= before+30<<20 && m.GetUsageBytes().GetValue() >= ws && m.GetRssBytes().GetValue() >= 30<<20, m.String()
	})
	if m := ctrStats(t, k, mem).GetMemory(); m.GetAvailableBytes() == nil || m.GetAvailableBytes().GetValue() > 256<<20 ||
		m.GetAvailableBytes().GetValue()+m.GetWorkingSetBytes().GetValue() != 256<<20 {
		t.Errorf("available bytes with a 256 MiB limit: %v", m)
	}
	if m := ctrStats(t, k, burn).GetMemory(); m.GetAvailableBytes() != nil {
		t.Errorf("available bytes without a limit: %v", m)
	}

	// Writable layer: grows once 10 MB are written into the root filesystem.
	var layer uint64
	eventually(t, "disk container's writable layer measured", 30*time.Second, func() (bool, string) {
		w := listCtrStats(t, k, &runtimeapi.ContainerStatsFilter{Id: disk})[disk].GetWritableLayer()
		layer = w.GetUsedBytes().GetValue()
		return w != nil && w.GetFsId().GetMountpoint() != "", w.String()
	})
	if r := execSync(t, k, disk, 30, "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=10"); r.ExitCode != 0 {
		t.Fatalf("dd: %s", r.Stderr)
	}
	eventually(t, "writable layer grows by 10 MB", 60*time.Second, func() (bool, string) {
		w := listCtrStats(t, k, &runtimeapi.ContainerStatsFilter{Id: disk})[disk].GetWritableLayer()
		return w.GetUsedBytes().GetValue() >= layer+10<<20 && w.GetInodesUsed().GetValue() > 0, w.String()
	})

	// Network: the pod receives what the host sends to its IP.
	st, info := podStatus(t, k, p.id)
	var rx uint64
	eventually(t, "pod network sampled", 30*time.Second, func() (bool, string) {
		n := podStats(t, k, p.id).GetLinux().GetNetwork()
		rx = n.GetDefaultInterface().GetRxBytes().GetValue()
		return n.GetDefaultInterface() != nil && n.GetDefaultInterface().GetName() == "eth0", n.String()
	})
	// Unconnected, so the pod's ICMP port-unreachable replies do not fail the writes.
	conn, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(st.Network.Ip), Port: 9999}
	payload := make([]byte, 1000)
	sent := 0
	eventually(t, "pod rx grows by 250 kB", 30*time.Second, func() (bool, string) {
		if sent < 300 { // in rounds: the first ones may wait for ARP
			for range 100 {
				if _, err := conn.WriteTo(payload, dst); err == nil {
					sent++
				}
			}
		}
		n := podStats(t, k, p.id).GetLinux().GetNetwork()
		dev, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pidOf(info)))
		return n.GetDefaultInterface().GetRxBytes().GetValue() >= rx+250_000, fmt.Sprintf("sent %d; %s; net/dev of pid %d:\n%s", sent, n, pidOf(info), dev)
	})

	// Pod stats: sums of its tasks, growing; its containers' stats inside.
	ps := podStats(t, k, p.id)
	lin := ps.GetLinux()
	if ps.GetAttributes().GetId() != p.id || ps.GetAttributes().GetMetadata().GetName() != "stats" || len(lin.GetContainers()) != 3 {
		t.Fatalf("pod stats: attributes %v, %d containers", ps.GetAttributes(), len(lin.GetContainers()))
	}
	if lin.GetProcess().GetProcessCount().GetValue() < 4 || lin.GetMemory().GetWorkingSetBytes().GetValue() < 30<<20 {
		t.Errorf("pod processes %v, memory %v", lin.GetProcess(), lin.GetMemory())
	}
	eventually(t, "pod CPU grows", 30*time.Second, func() (bool, string) {
		c := podStats(t, k, p.id).GetLinux().GetCpu()
		return c.GetUsageCoreNanoSeconds().GetValue() > lin.GetCpu().GetUsageCoreNanoSeconds().GetValue() && c.GetUsageNanoCores().GetValue() > 2e8, c.String()
	})
	single, err := k.Runtime.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.id})
	if err != nil || single.GetStats().GetLinux().GetCpu() == nil || len(single.GetStats().GetLinux().GetContainers()) != 3 {
		t.Errorf("PodSandboxStats: %v %v", single, err)
	}

	// Filters.
	for name, tc := range map[string]struct {
		f    *runtimeapi.ContainerStatsFilter
		want int
	}{
		"none":      {nil, 3},
		"pod":       {&runtimeapi.ContainerStatsFilter{PodSandboxId: p.id}, 3},
		"id prefix": {&runtimeapi.ContainerStatsFilter{Id: burn[:12]}, 1},
		"label":     {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"ctr": "mem"}}, 1},
		"no pod":    {&runtimeapi.ContainerStatsFilter{PodSandboxId: "nosuch"}, 0},
		"no label":  {&runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{"ctr": "nosuch"}}, 0},
	} {
		if got := listCtrStats(t, k, tc.f); len(got) != tc.want {
			t.Errorf("filter %s: %d stats, want %d", name, len(got), tc.want)
		}
	}
	if resp, err := k.Runtime.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{
		Filter: &runtimeapi.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "nosuch"}},
	}); err != nil || len(resp.Stats) != 0 {
		t.Errorf("pod label filter: %v %v", resp, err)
	}
	if _, err := k.Runtime.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStats of an unknown container: %v", err)
	}
	if _, err := k.Runtime.PodSandboxStats(ctx, &runtimeapi.PodSandboxStatsRequest{PodSandboxId: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Errorf("PodSandboxStats of an unknown pod: %v", err)
	}

	checkMetrics(t, k, p.id, burn)

	// A stopped container keeps its writable layer only.
	stopCtr(t, k, burn, 0)
	eventually(t, "stopped container's CPU stats dropped", 30*time.Second, func() (bool, string) {
		s := ctrStats(t, k, burn)
		return s.GetCpu() == nil && s.GetWritableLayer() != nil, s.String()
	})
	stopAndRemovePod(t, k, p.id)
	if got := listCtrStats(t, k, nil); len(got) != 0 {
		t.Errorf("stats of removed containers: %v", got)
	}
	k.CheckNoLeaks(t)
}

// checkMetrics checks ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor names,
// label values matching the descriptors' keys, the pod's and the burner's metrics.
func checkMetrics(t *testing.T, k *harness.Keelson, podID, burn string) {
	t.Helper()
	ctx := harness.Ctx(t)
	desc, err := k.Runtime.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	if err != nil || len(desc.Descriptors) == 0 {
		t.Fatalf("ListMetricDescriptors: %v %v", desc, err)
	}
	keys := map[string]int{}
	for _, d := range desc.Descriptors {
		keys[d.Name] = len(d.LabelKeys)
	}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_memory_usage_bytes",
		"container_memory_rss", "container_network_receive_bytes_total", "container_network_transmit_bytes_total", "container_fs_usage_bytes"} {
		if _, ok := keys[name]; !ok {
			t.Errorf("no descriptor for %s", name)
		}
	}
	resp, err := k.Runtime.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	check := func(who string, ms []*runtimeapi.Metric) {
		for _, m := range ms {
			n, ok := keys[m.Name]
			if !ok || n != len(m.LabelValues) {
				t.Errorf("%s: metric %s has %d label values, descriptor %d (known %v)", who, m.Name, len(m.LabelValues), n, ok)
			}
			seen[who+"/"+m.Name] = true
		}
	}
	for _, pm := range resp.PodMetrics {
		if pm.PodSandboxId != podID {
			continue
		}
		check("pod", pm.Metrics)
		for _, cm := range pm.ContainerMetrics {
			if cm.ContainerId == burn {
				check("burn", cm.Metrics)
			}
		}
	}
	for _, want := range []string{"pod/container_network_receive_bytes_total", "pod/container_cpu_usage_seconds_total",
		"burn/container_cpu_usage_seconds_total", "burn/container_memory_working_set_bytes", "burn/container_fs_usage_bytes", "burn/container_start_time_seconds"} {
		if !seen[want] {
			t.Errorf("ListPodSandboxMetrics lacks %s", want)
		}
	}
}

// TestStatsOnDemand: with the default 10s interval, a container started after a
// sample gets its stats at once, from one on-demand sample of its task (filtered by
// ID, with both containerds), and two stats calls a second apart get two samples.
func TestStatsOnDemand(t *testing.T) {
	for name, bin := range containerdBinaries(t) {
		t.Run(name, func(t *testing.T) { statsOnDemand(t, bin) })
	}
}

func statsOnDemand(t *testing.T, bin string) {
	harness.RequireRoot(t)
	k := startWithRegistry(t, reg, func(o *harness.Options) { o.ContainerdBinary = bin })
	mustPull(t, k, images.Busybox)
	p := newPod(t, k, "ondemand")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "100000"))
	s := ctrStats(t, k, id)
	if s.GetCpu().GetUsageCoreNanoSeconds() == nil || s.GetMemory().GetWorkingSetBytes() == nil {
		t.Errorf("stats right after start: %v", s)
	}
	resp, err := k.Runtime.PodSandboxStats(harness.Ctx(t), &runtimeapi.PodSandboxStatsRequest{PodSandboxId: p.id})
	if err != nil || resp.GetStats().GetLinux().GetCpu() == nil || len(resp.GetStats().GetLinux().GetContainers()) != 1 {
		t.Errorf("PodSandboxStats right after start: %v %v", resp, err)
	}
	// What crictl stats and statsp do: two lists a second apart, CPU % from the
	// difference. A container spinning a core shows it, and usage_nano_cores too.
	busy := p.run(t, ctrConfig("busy", images.Busybox, "sh", "-c", "while :; do :; done"))
	list := func() (*runtimeapi.ContainerStats, *runtimeapi.PodSandboxStats) {
		cs := listCtrStats(t, k, &runtimeapi.ContainerStatsFilter{Id: busy})[busy]
		ps, err := k.Runtime.ListPodSandboxStats(harness.Ctx(t), &runtimeapi.ListPodSandboxStatsRequest{})
		if err != nil || len(ps.GetStats()) != 1 {
			t.Fatalf("ListPodSandboxStats: %v %v", ps, err)
		}
		return cs, ps.Stats[0]
	}
	percent := func(a, b *runtimeapi.CpuUsage) float64 {
		if b.GetTimestamp() <= a.GetTimestamp() {
			t.Fatalf("cpu stat is not updated during sample: %v then %v", a, b)
		}
		return float64(b.GetUsageCoreNanoSeconds().GetValue()-a.GetUsageCoreNanoSeconds().GetValue()) / float64(b.GetTimestamp()-a.GetTimestamp()) * 100
	}
	c1, p1 := list()
	time.Sleep(time.Second)
	c2, p2 := list()
	if pc := percent(c1.GetCpu(), c2.GetCpu()); pc < 20 {
		t.Errorf("crictl stats would show %.1f%% CPU for a busy container", pc)
	}
	if pc := percent(p1.GetLinux().GetCpu(), p2.GetLinux().GetCpu()); pc < 20 {
		t.Errorf("crictl statsp would show %.1f%% CPU for a pod with a busy container", pc)
	}
	if c2.GetCpu().GetUsageNanoCores().GetValue() < 2e8 || p2.GetLinux().GetCpu().GetUsageNanoCores().GetValue() < 2e8 {
		t.Errorf("usage_nano_cores: container %v, pod %v", c2.GetCpu().GetUsageNanoCores(), p2.GetLinux().GetCpu().GetUsageNanoCores())
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// BenchmarkListContainerStats measures ListContainerStats and ListPodSandboxStats over
// the CRI socket with 20 running containers in 4 pods (kubelet asks every 10s).
// Run: go test -run '^$' -bench ListContainerStats ./test/integration/
func BenchmarkListContainerStats(b *testing.B) {
	harness.RequireRoot(b)
	const pods, perPod = 4, 5
	opts := harness.Options{Registry: reg}
	k := harness.Prepare(b, opts)
	k.Start(opts)
	ctx := harness.Ctx(b)
	if _, err := k.Images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: images.Busybox}}); err != nil {
		b.Fatal(err)
	}
	var podIDs []string
	for i := range pods {
		cfg := podConfig(k, fmt.Sprintf("bench%d", i))
		resp, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		podIDs = append(podIDs, resp.PodSandboxId)
		var wg sync.WaitGroup
		for j := range perPod {
			wg.Go(func() {
				c := ctrConfig(fmt.Sprintf("c%d", j), images.Busybox, "sleep", "100000")
				cr, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, Config: c, SandboxConfig: cfg})
				if err == nil {
					_, err = k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: cr.ContainerId})
				}
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
	b.Cleanup(func() {
		for _, id := range podIDs {
			_, _ = k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			_, _ = k.Runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		}
	})
	b.Run("ListContainerStats", func(b *testing.B) {
		for b.Loop() {
			resp, err := k.Runtime.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			if err != nil || len(resp.Stats) != pods*perPod {
				b.Fatalf("%d stats, %v", len(resp.GetStats()), err)
			}
		}
	})
	b.Run("ListPodSandboxStats", func(b *testing.B) {
		for b.Loop() {
			resp, err := k.Runtime.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
			if err != nil || len(resp.Stats) != pods {
				b.Fatalf("%d stats, %v", len(resp.GetStats()), err)
			}
		}
	})
	b.Run("ListPodSandboxMetrics", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Runtime.ListPodSandboxMetrics(ctx, &runtimeapi.ListPodSandboxMetricsRequest{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
