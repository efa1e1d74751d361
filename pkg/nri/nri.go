// Package nri serves NRI plugins (github.com/containerd/nri): keelson is the
// runtime side. Plugins see pods and containers come and go, may adjust a container's
// OCI spec before it is created (environment, mounts, annotations, resources,
// devices…) and may update other containers' resources. A nil *NRI is NRI turned
// off: every method does nothing.
//
// Pods and containers reach plugins in the forms built here (Pod, Container) from
// what keelson records: the CRI configs and the OCI spec.
package nri

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	nrilog "github.com/containerd/nri/pkg/log"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	rgen "github.com/opencontainers/runtime-tools/generate"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/version"
)

// Options configure the plugin interface (config [nri]).
type Options struct {
	SocketPath          string // where plugins connect ("" with DisableConnections)
	PluginPath          string // plugins keelson starts itself
	PluginConfigPath    string
	DisableConnections  bool
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
	// InjectCDI applies the CDI devices plugins ask for; nil: such an adjustment fails.
	InjectCDI func(spec *specs.Spec, devices []string) error
}

// State lists every pod and container, for a plugin that registers.
type State func(ctx context.Context) ([]*api.PodSandbox, []*api.Container)

// Updater applies the resource updates plugins ask for to existing containers and
// returns those that failed.
type Updater func(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error)

// NRI is the runtime side of NRI.
type NRI struct {
	a      *adaptation.Adaptation
	state  State
	update Updater
	cdi    func(spec *specs.Spec, devices []string) error
}

// New sets up NRI; Start serves plugins.
func New(o Options, state State, update Updater) (*NRI, error) {
	nrilog.Set(klogger{})
	n := &NRI{state: state, update: update, cdi: o.InjectCDI}
	if n.cdi == nil {
		n.cdi = func(*specs.Spec, []string) error { return errors.New("CDI is off (cdi.enabled)") }
	}
	adaptation.SetPluginRegistrationTimeout(o.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(o.RequestTimeout)
	opts := []adaptation.Option{
		adaptation.WithPluginPath(o.PluginPath),
		adaptation.WithPluginConfigPath(o.PluginConfigPath),
	}
	if o.DisableConnections {
		opts = append(opts, adaptation.WithDisabledExternalConnections())
	} else {
		opts = append(opts, adaptation.WithSocketPath(o.SocketPath))
	}
	a, err := adaptation.New("keelson", version.Version, n.sync, n.updateContainers, opts...)
	if err != nil {
		return nil, fmt.Errorf("NRI: %w", err)
	}
	n.a = a
	return n, nil
}

// Start starts the plugins in the plugin directory and listens for others.
func (n *NRI) Start() error {
	if n == nil {
		return nil
	}
	if err := n.a.Start(); err != nil {
		return fmt.Errorf("starting NRI: %w", err)
	}
	return nil
}

// Stop stops the plugins keelson started and closes the socket.
func (n *NRI) Stop() {
	if n != nil {
		n.a.Stop()
	}
}

// sync hands a registering plugin every pod and container and applies the updates
// it asks for.
func (n *NRI) sync(ctx context.Context, cb adaptation.SyncCB) error {
	pods, ctrs := n.state(ctx)
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	_, err = n.updateContainers(ctx, updates)
	return err
}

// updateContainers applies updates plugins ask for; failures a plugin allowed
// (IgnoreFailure) are only logged.
func (n *NRI) updateContainers(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	if len(updates) == 0 {
		return nil, nil
	}
	failed, err := n.update(ctx, updates)
	var must []string
	for _, u := range failed {
		if !u.GetIgnoreFailure() {
			must = append(must, u.GetContainerId())
		}
	}
	if len(must) > 0 {
		return failed, fmt.Errorf("NRI: updating containers %v failed: %w", must, err)
	}
	if err != nil {
		klog.InfoS("Some NRI container updates failed", "err", err)
	}
	return failed, nil
}

// BlockSync keeps plugins from being synchronized until the returned func is called:
// a pod or container made meanwhile is either in a new plugin's synchronization or
// told to it by its event, never lost between the two. Hold it from before the NRI
// event until the object is listed. Safe on a nil *NRI.
func (n *NRI) BlockSync() (unblock func()) {
	if n == nil {
		return func() {}
	}
	return n.a.BlockPluginSync().Unblock
}

// RunPodSandbox tells plugins a pod runs.
func (n *NRI) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if n == nil {
		return nil
	}
	return wrap("RunPodSandbox", n.a.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod}))
}

// UpdatePodSandbox tells plugins a pod is being resized; PostUpdatePodSandbox that
// it was.
func (n *NRI) UpdatePodSandbox(ctx context.Context, pod *api.PodSandbox, overhead, resources *runtimeapi.LinuxContainerResources) error {
	if n == nil {
		return nil
	}
	_, err := n.a.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{
		Pod: pod, OverheadLinuxResources: FromCRIResources(overhead), LinuxResources: FromCRIResources(resources),
	})
	return wrap("UpdatePodSandbox", err)
}

func (n *NRI) PostUpdatePodSandbox(ctx context.Context, pod *api.PodSandbox) {
	if n != nil {
		logged("PostUpdatePodSandbox", n.a.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: pod}))
	}
}

// StopPodSandbox and RemovePodSandbox tell plugins a pod stopped or is gone.
func (n *NRI) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) {
	if n != nil {
		logged("StopPodSandbox", n.a.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}))
	}
}

func (n *NRI) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) {
	if n != nil {
		logged("RemovePodSandbox", n.a.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod}))
	}
}

// CreateContainer has plugins adjust spec, the container's OCI spec before it is
// created; the updates to other containers they ask for follow.
func (n *NRI) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, spec *specs.Spec) error {
	if n == nil {
		return nil
	}
	resp, err := n.a.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
	if err != nil {
		return wrap("CreateContainer", err)
	}
	if adj := resp.GetAdjust(); adj != nil {
		g := generate.SpecGenerator(&rgen.Generator{Config: spec}, generate.WithCDIDeviceInjector(n.cdi))
		if err := g.Adjust(adj); err != nil {
			return fmt.Errorf("NRI: applying the plugins' adjustment of container %s: %w", ctr.GetName(), err)
		}
	}
	n.updateLater(resp.GetUpdate())
	return nil
}

// updateLater applies updates to other containers a plugin asked for in answer to
// an event, once the event is over: the caller may hold the lock of a container
// an update needs.
func (n *NRI) updateLater(updates []*api.ContainerUpdate) {
	if len(updates) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := n.updateContainers(ctx, updates); err != nil {
			klog.ErrorS(err, "Applying NRI plugins' container updates")
		}
	}()
}

// PostCreateContainer, StartContainer and PostStartContainer follow a container's
// creation and start; a plugin failing StartContainer fails the start.
func (n *NRI) PostCreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n != nil {
		logged("PostCreateContainer", n.a.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: pod, Container: ctr}))
	}
}

func (n *NRI) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	if n == nil {
		return nil
	}
	return wrap("StartContainer", n.a.StartContainer(ctx, &api.StartContainerRequest{Pod: pod, Container: ctr}))
}

func (n *NRI) PostStartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n != nil {
		logged("PostStartContainer", n.a.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: pod, Container: ctr}))
	}
}

// UpdateContainer lets plugins amend a container's new resources (UpdateContainerResources)
// and returns what to apply.
func (n *NRI) UpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, res *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, error) {
	if n == nil {
		return res, nil
	}
	resp, err := n.a.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: FromCRIResources(res)})
	if err != nil {
		return nil, wrap("UpdateContainer", err)
	}
	out := res
	var others []*api.ContainerUpdate
	for _, u := range resp.GetUpdate() {
		if u.GetContainerId() == ctr.GetId() {
			out = MergeResources(res, u.GetLinux().GetResources())
			continue
		}
		others = append(others, u)
	}
	n.updateLater(others)
	return out, nil
}

func (n *NRI) PostUpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n != nil {
		logged("PostUpdateContainer", n.a.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: pod, Container: ctr}))
	}
}

// StopContainer tells plugins a container stopped (asked to, or exited) and applies
// the updates they ask for; RemoveContainer that it is gone.
func (n *NRI) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n == nil {
		return
	}
	resp, err := n.a.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: ctr})
	logged("StopContainer", err)
	n.updateLater(resp.GetUpdate())
}

func (n *NRI) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) {
	if n != nil {
		logged("RemoveContainer", n.a.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: ctr}))
	}
}

func wrap(event string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("NRI %s: %w", event, err)
}

// logged reports the failure of an event that cannot be undone (a container that
// stopped is stopped).
func logged(event string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		klog.ErrorS(err, "NRI plugins failed an event", "event", event)
	}
}
