package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/wait"
)

// nriPlugin records the events it sees and adjusts the containers it is told of.
type nriPlugin struct {
	mu     sync.Mutex
	events []string
	// slowPod makes RunPodSandbox hang (a plugin that stopped answering).
	slowPod bool
}

func (p *nriPlugin) record(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf(format, a...))
}

func (p *nriPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Synchronize limits the memory of the containers named "b" it is told of.
func (p *nriPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	var names []string
	for _, pod := range pods {
		names = append(names, pod.GetName())
	}
	slices.Sort(names)
	p.record("Synchronize %s", strings.Join(names, ","))
	var updates []*api.ContainerUpdate
	for _, c := range ctrs {
		if c.GetName() == "b" {
			u := &api.ContainerUpdate{}
			u.SetContainerId(c.GetId())
			u.SetLinuxMemoryLimit(40 << 20)
			updates = append(updates, u)
		}
	}
	return updates, nil
}

func (p *nriPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	if p.slowPod {
		time.Sleep(time.Minute)
	}
	p.record("RunPodSandbox %s", pod.GetName())
	return nil
}

func (p *nriPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox %s", pod.GetName())
	return nil
}

func (p *nriPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox %s", pod.GetName())
	return nil
}

func (p *nriPlugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, res *api.LinuxResources) error {
	p.record("UpdatePodSandbox %s %d", pod.GetName(), res.GetMemory().GetLimit().GetValue())
	return nil
}

// CreateContainer adds an environment variable and an annotation, and sets a
// memory limit.
func (p *nriPlugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer %s/%s", pod.GetName(), ctr.GetName())
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("KEELSON_NRI", "adjusted-"+ctr.GetName())
	adj.AddAnnotation("keelson.test/nri", "yes")
	adj.SetLinuxMemoryLimit(48 << 20)
	return adj, nil, nil
}

func (p *nriPlugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostCreateContainer %s/%s", pod.GetName(), ctr.GetName())
	return nil
}

func (p *nriPlugin) StartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("StartContainer %s/%s", pod.GetName(), ctr.GetName())
	return nil
}

func (p *nriPlugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostStartContainer %s/%s %d", pod.GetName(), ctr.GetName(), ctr.GetPid())
	return nil
}

// UpdateContainer halves the memory limit asked for.
func (p *nriPlugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer %s/%s", pod.GetName(), ctr.GetName())
	u := &api.ContainerUpdate{}
	u.SetContainerId(ctr.GetId())
	u.SetLinuxMemoryLimit(res.GetMemory().GetLimit().GetValue() / 2)
	return []*api.ContainerUpdate{u}, nil
}

func (p *nriPlugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostUpdateContainer %s/%s", pod.GetName(), ctr.GetName())
	return nil
}

func (p *nriPlugin) StopContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer %s/%s", pod.GetName(), ctr.GetName())
	return nil, nil
}

func (p *nriPlugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("RemoveContainer %s/%s", pod.GetName(), ctr.GetName())
	return nil
}

// startNRIPlugin connects plugin p to keelson's NRI socket; closed tells when
// keelson dropped it.
func startNRIPlugin(t *testing.T, socket, name, idx string, p *nriPlugin) (s stub.Stub, closed chan struct{}) {
	t.Helper()
	closed = make(chan struct{})
	s, err := stub.New(p, stub.WithSocketPath(socket), stub.WithPluginName(name), stub.WithPluginIdx(idx),
		stub.WithOnClose(func() { close(closed) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(); cancel() })
	return s, closed
}

// TestNRI: a plugin on keelson's NRI socket is told of the pods that exist when it
// registers, sees every pod and container event, adjusts a container before it is
// created (environment, annotation, memory limit) and amends a resource update; a
// plugin that stops answering is dropped after the request timeout without failing
// the pod.
func TestNRI(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "nri.sock")
	k := startWithRegistry(t, reg, func(o *harness.Options) {
		o.ExtraConfig = fmt.Sprintf("\n[nri]\n  enabled = true\n  socket_path = %q\n  plugin_path = %q\n  plugin_config_path = %q\n  plugin_request_timeout = \"2s\"\n",
			socket, filepath.Join(dir, "plugins"), filepath.Join(dir, "conf.d"))
	})
	mustPull(t, k, images.Busybox)
	ctx := harness.Ctx(t)
	before := newPod(t, k, "before")
	b := before.run(t, ctrConfig("b", images.Busybox, "sleep", "100000"))
	memLimit := func(id string) string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/memory", k.CgroupParent, id, "memory.limit_in_bytes"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	p := &nriPlugin{}
	plugin, _ := startNRIPlugin(t, socket, "test", "10", p)
	wait.For(t, "the plugin's synchronization", 30*time.Second, func() error {
		if !slices.Contains(p.seen(), "Synchronize before") {
			return fmt.Errorf("events %v", p.seen())
		}
		return nil
	})

	pd := newPod(t, k, "nri")
	id := pd.run(t, ctrConfig("c", images.Busybox, "sleep", "100000"))
	r := execSync(t, k, id, 10, "sh", "-c", "echo $KEELSON_NRI")
	if got := strings.TrimSpace(string(r.Stdout)); got != "adjusted-c" {
		t.Errorf("KEELSON_NRI in the container = %q", got)
	}
	// The update the plugin asked for at synchronization.
	if got := memLimit(b); got != strconv.Itoa(40<<20) {
		t.Errorf("memory limit of the container the plugin updated at synchronization = %s", got)
	}
	if got := memLimit(id); got != strconv.Itoa(48<<20) {
		t.Errorf("memory limit after the plugin's adjustment = %s", got)
	}
	st, err := k.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Info["info"], `"keelson.test/nri":"yes"`) {
		t.Errorf("the plugin's annotation is not in the container's spec")
	}
	if _, err := k.Runtime.UpdateContainerResources(ctx, &runtimeapi.UpdateContainerResourcesRequest{
		ContainerId: id, Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 128 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	if got := memLimit(id); got != strconv.Itoa(64<<20) {
		t.Errorf("memory limit after an update the plugin halves = %s", got)
	}
	// An update the plugin makes on its own.
	u := &api.ContainerUpdate{}
	u.SetContainerId(id)
	u.SetLinuxMemoryLimit(80 << 20)
	if failed, err := plugin.UpdateContainers([]*api.ContainerUpdate{u}); err != nil || len(failed) > 0 {
		t.Errorf("unsolicited update: %v, failed %v", err, failed)
	}
	if got := memLimit(id); got != strconv.Itoa(80<<20) {
		t.Errorf("memory limit after the plugin's own update = %s", got)
	}
	stopAndRemovePod(t, k, pd.id)

	want := []string{
		"RunPodSandbox nri", "CreateContainer nri/c", "PostCreateContainer nri/c", "StartContainer nri/c",
		"UpdateContainer nri/c", "PostUpdateContainer nri/c", "StopContainer nri/c", "StopPodSandbox nri",
		"RemoveContainer nri/c", "RemovePodSandbox nri",
	}
	wait.For(t, "the pod's events", 30*time.Second, func() error {
		var got []string
		for _, e := range p.seen() {
			if strings.Contains(e, " nri") && !strings.HasPrefix(e, "PostStartContainer") {
				got = append(got, e)
			}
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("events\n%v\nwant\n%v", got, want)
		}
		return nil
	})
	if !slices.ContainsFunc(p.seen(), func(e string) bool {
		return strings.HasPrefix(e, "PostStartContainer nri/c ") && !strings.HasSuffix(e, " 0")
	}) {
		t.Errorf("PostStartContainer without the container's pid: %v", p.seen())
	}

	// A plugin that stops answering: the pod still runs, once the request timeout
	// (2s) has dropped the plugin.
	slow := &nriPlugin{slowPod: true}
	_, closed := startNRIPlugin(t, socket, "slow", "20", slow)
	started := time.Now()
	late := newPod(t, k, "late")
	if took := time.Since(started); took > 20*time.Second {
		t.Errorf("RunPodSandbox with a plugin that does not answer took %v", took)
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Error("keelson did not drop the plugin that stopped answering")
	}
	stopAndRemovePod(t, k, late.id)
	stopAndRemovePod(t, k, before.id)
	k.CheckNoLeaks(t)
}
