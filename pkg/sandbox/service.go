package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/events"
	"github.com/keelson/keelson/pkg/failpoint"
	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/store"
)

// cleanupTimeout bounds undo steps, which run on a fresh context so a cancelled
// request still cleans up.
const cleanupTimeout = 2 * time.Minute

// Options configure the sandbox service.
type Options struct {
	RootDir        string // sandbox files: <RootDir>/sandboxes/<id>
	StateDir       string // netns, shm and status files under <StateDir>
	Snapshotter    string
	Handlers       map[string]config.RuntimeHandler
	DefaultHandler string
	Events         *events.Broadcaster // lifecycle events (may be nil)
	PauseContainer string              // "auto" or "always" (config runtime.pause_container)
}

// Hooks let the container service act on a pod's containers without this package
// importing it (containers depend on sandboxes, not the reverse).
type Hooks struct {
	// StopContainers stops every container of the sandbox.
	StopContainers func(ctx context.Context, sandboxID string) error
	// RemoveContainers removes every container of the sandbox.
	RemoveContainers func(ctx context.Context, sandboxID string) error
}

// Service manages pod sandboxes.
type Service struct {
	conn    *runtime.Conn
	client  *containerd.Client
	images  *keelsonimages.Service
	network *cni.Manager
	opts    Options
	ownOOM  int

	store    *store.Store[*Sandbox]
	names    store.Names
	inflight store.Inflight[string]
	hooks    Hooks
}

// New returns the service; Load recovers existing sandboxes.
func New(conn *runtime.Conn, imgs *keelsonimages.Service, network *cni.Manager, opts Options) *Service {
	return &Service{
		conn:    conn,
		client:  conn.Client,
		images:  imgs,
		network: network,
		opts:    opts,
		ownOOM:  oci.OwnOOMScoreAdj(),
		store:   store.NewStore[*Sandbox](),
	}
}

// SetHooks installs the container service's hooks.
func (s *Service) SetHooks(h Hooks) { s.hooks = h }

func (s *Service) netnsPath(id string) string { return filepath.Join(s.opts.StateDir, "netns", id) }
func (s *Service) stateDir(id string) string  { return filepath.Join(s.opts.StateDir, "sandboxes", id) }
func (s *Service) filesDir(id string) string  { return filepath.Join(s.opts.RootDir, "sandboxes", id) }
func (s *Service) statusPath(id string) string {
	return filepath.Join(s.stateDir(id), "status.json")
}

// podName is the unique name kubelet's retries must not duplicate.
func podName(md *runtimeapi.PodSandboxMetadata) string {
	return strings.Join([]string{md.Name, md.Namespace, md.Uid, fmt.Sprint(md.Attempt)}, "_")
}

func validate(cfg *runtimeapi.PodSandboxConfig) error {
	md := cfg.GetMetadata()
	if md == nil {
		return fmt.Errorf("sandbox config has no metadata: %w", errdefs.ErrInvalidArgument)
	}
	for field, v := range map[string]string{"metadata.name": md.Name, "metadata.namespace": md.Namespace, "metadata.uid": md.Uid} {
		if v == "" {
			return fmt.Errorf("sandbox config %s is empty: %w", field, errdefs.ErrInvalidArgument)
		}
	}
	if d := cfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
		return fmt.Errorf("sandbox config log_directory %q must be absolute: %w", d, errdefs.ErrInvalidArgument)
	}
	return nil
}

// undo is a stack of cleanup steps run in reverse when a creation fails.
type undo []struct {
	what string
	fn   func(ctx context.Context) error
}

func (u *undo) push(what string, fn func(ctx context.Context) error) {
	*u = append(*u, struct {
		what string
		fn   func(ctx context.Context) error
	}{what, fn})
}

// run undoes every step, newest first, on a fresh bounded context; it returns the
// failures (the caller then keeps what is left for Stop/Remove to finish).
func (u undo) run(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	for i := len(u) - 1; i >= 0; i-- {
		if err := u[i].fn(ctx); err != nil {
			klog.ErrorS(err, "Undo step failed", "podSandboxID", id, "step", u[i].what)
			errs = append(errs, fmt.Errorf("%s: %w", u[i].what, err))
		}
	}
	return errors.Join(errs...)
}

// keepResult is how long the result of a RunPodSandbox whose client gave up is kept
// for the client's retry.
const keepResult = 5 * time.Minute

// Run creates and starts a sandbox and returns its ID. When the client's deadline
// passes first, the work goes on and a retry with the same pod gets its result (not
// "name is reserved").
func (s *Service) Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handlerName string) (string, error) {
	if err := validate(cfg); err != nil {
		return "", err
	}
	return s.inflight.Do(ctx, podName(cfg.GetMetadata()), keepResult, func(ctx context.Context) (string, error) {
		return s.run(ctx, cfg, handlerName)
	})
}

// run does Run's work. Every step is undone if a later one fails; if an undo fails,
// the sandbox is kept NOTREADY for Stop/Remove to finish.
func (s *Service) run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handlerName string) (_ string, retErr error) {
	if handlerName == "" {
		handlerName = s.opts.DefaultHandler
	}
	handler, ok := s.opts.Handlers[handlerName]
	if !ok {
		return "", fmt.Errorf("runtime handler %q is not configured (runtime.handlers): %w", handlerName, errdefs.ErrInvalidArgument)
	}
	id := store.NewID()
	md := cfg.GetMetadata()
	name := podName(md)
	if err := s.names.Reserve(name, id); err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", name, err)
	}
	if err := failpoint.Hit("sandbox/run/reserved"); err != nil {
		s.names.Release(name, id)
		return "", err
	}
	sb := &Sandbox{Metadata: Metadata{
		ID: id, Name: name, Config: cfg, RuntimeHandler: handlerName, RuntimeType: handler.RuntimeType,
		Dir: s.filesDir(id), CreatedAt: time.Now().UnixNano(),
	}}
	hostNet, hostIPC := sb.HostNetwork(), sb.HostIPC()
	if !hostNet {
		sb.NetNSPath = s.netnsPath(id)
	}
	if !hostIPC {
		sb.ShmPath = filepath.Join(s.stateDir(id), "shm")
	}
	log := klog.FromContext(ctx).WithValues("podSandboxID", id, "pod", name)

	var steps undo
	defer func() {
		if retErr == nil {
			return
		}
		if err := steps.run(id); err != nil {
			// Keep it, NOTREADY, so StopPodSandbox/RemovePodSandbox finish the job.
			sb.status = Status{State: StateNotReady}
			s.store.Put(id, sb)
			retErr = fmt.Errorf("%w (cleanup incomplete, sandbox %s kept NOTREADY: %v)", retErr, id, err)
			return
		}
		s.names.Release(name, id)
	}()

	// The network comes up while the image and files are prepared.
	type netResult struct {
		res *cni.Result
		err error
	}
	netDone := make(chan netResult, 1)
	steps.push("remove pod network", func(ctx context.Context) error {
		r := <-netDone // wait for the setup to finish before undoing it
		netDone <- r
		if hostNet {
			return nil
		}
		if err := s.network.Detach(ctx, s.cniPod(sb)); err != nil {
			return err
		}
		return netns.Remove(sb.NetNSPath)
	})
	go func() {
		if hostNet {
			netDone <- netResult{}
			return
		}
		if err := netns.Create(sb.NetNSPath); err != nil {
			netDone <- netResult{err: fmt.Errorf("creating network namespace: %w", err)}
			return
		}
		if err := failpoint.Hit("sandbox/run/netns"); err != nil {
			netDone <- netResult{err: err}
			return
		}
		res, err := s.network.Attach(ctx, s.cniPod(sb))
		if err == nil {
			err = failpoint.Hit("sandbox/run/cni")
		}
		netDone <- netResult{res, err}
	}()
	waitNet := func() (*cni.Result, error) {
		r := <-netDone
		netDone <- r
		return r.res, r.err
	}

	// A pod whose containers share one PID namespace needs a process to hold it and
	// reap zombies: the pause container. Others keep their namespaces pinned by bind
	// mounts, with no process at all.
	sb.InfraLess = s.opts.PauseContainer != "always" &&
		cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() != runtimeapi.NamespaceMode_POD
	var img *keelsonimages.Image
	var spec *specs.Spec
	var err error
	if sb.InfraLess {
		spec, err = oci.InfraLessSandboxSpec(id, cfg)
	} else {
		img, err = s.images.EnsureSandboxImage(ctx)
		if err == nil {
			err = failpoint.Hit("sandbox/run/image")
		}
		if err == nil {
			sb.Image = img.ID
			spec, err = oci.SandboxSpec(namespaces.WithNamespace(ctx, s.conn.Namespace), oci.SandboxInput{
				ID: id, Config: cfg, Image: img.Spec.Config, NetNSPath: sb.NetNSPath, OwnOOM: s.ownOOM,
			})
		}
	}
	if err != nil {
		waitNet()
		return "", err
	}

	steps.push("remove sandbox files", func(ctx context.Context) error {
		if err := s.unpin(sb); err != nil {
			return err
		}
		return errors.Join(os.RemoveAll(s.stateDir(id)), os.RemoveAll(sb.Dir))
	})
	if sb.ShmPath != "" {
		if err := mountShm(sb.ShmPath); err != nil {
			waitNet()
			return "", err
		}
	}
	if err := failpoint.Hit("sandbox/run/shm"); err != nil {
		waitNet()
		return "", err
	}
	if sb.InfraLess {
		if err := s.pinNamespaces(sb); err != nil {
			waitNet()
			return "", err
		}
		if err := failpoint.Hit("sandbox/run/namespaces"); err != nil {
			waitNet()
			return "", err
		}
	}

	res, err := waitNet()
	if err != nil {
		return "", err
	}
	if res != nil {
		sb.IPs, sb.CNIResult = res.IPs, res.Raw
	}
	if sb.InfraLess && sb.NetNSPath != "" {
		// runc applies a pause container's sysctls; without one, keelson does.
		if err := applySysctls(sb.NetNSPath, unix.CLONE_NEWNET, cfg.GetLinux().GetSysctls(), isNetSysctl); err != nil {
			return "", err
		}
	}
	if err := writeFiles(sb.Dir, cfg, hostNet, sb.IPs); err != nil {
		return "", fmt.Errorf("writing sandbox files: %w", err)
	}
	if err := failpoint.Hit("sandbox/run/files"); err != nil {
		return "", err
	}
	if err := sb.Metadata.encode(); err != nil {
		return "", err
	}
	specJSON, _ := json.Marshal(spec)
	sb.spec = specJSON

	labels := map[string]string{
		LabelKind: KindSandbox, labelPodName: md.Name, labelPodNS: md.Namespace, labelPodUID: md.Uid,
	}
	if sb.InfraLess {
		// The durable record only: no snapshot, no task.
		if _, err := s.client.NewContainer(ctx, id,
			containerd.WithRuntime(handler.RuntimeType, runtimeOptions(handler)),
			containerd.WithSpec(spec),
			containerd.WithContainerLabels(labels),
			containerd.WithContainerExtension(ExtensionKey, &sb.Metadata),
		); err != nil {
			return "", fmt.Errorf("recording the sandbox: %w", err)
		}
		steps.push("delete sandbox record", func(ctx context.Context) error {
			err := s.client.ContainerService().Delete(ctx, id)
			if errdefs.IsNotFound(err) {
				return nil
			}
			return err
		})
		if err := failpoint.Hit("sandbox/run/container"); err != nil {
			return "", err
		}
		sb.status = Status{State: StateReady}
		return s.finishRun(sb, log)
	}
	image := containerd.NewImageWithPlatform(s.client, images.Image{Name: img.ID, Target: img.Target}, platforms.Default())
	container, err := s.client.NewContainer(ctx, id,
		containerd.WithSnapshotter(s.opts.Snapshotter),
		containerd.WithNewSnapshot(id, image),
		containerd.WithRuntime(handler.RuntimeType, runtimeOptions(handler)),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(labels),
		containerd.WithContainerExtension(ExtensionKey, &sb.Metadata),
	)
	if err != nil {
		return "", fmt.Errorf("creating infra container: %w", err)
	}
	steps.push("delete infra container", func(ctx context.Context) error {
		err := container.Delete(ctx, containerd.WithSnapshotCleanup)
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err := failpoint.Hit("sandbox/run/container"); err != nil {
		return "", err
	}

	task, err := container.NewTask(ctx, cio.NullIO)
	if err != nil {
		return "", fmt.Errorf("creating infra task: %w", err)
	}
	steps.push("delete infra task", func(ctx context.Context) error {
		_, err := task.Delete(ctx, containerd.WithProcessKill)
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err := failpoint.Hit("sandbox/run/task"); err != nil {
		return "", err
	}
	if err := task.Start(ctx); err != nil {
		return "", fmt.Errorf("starting infra task: %w", err)
	}
	if err := failpoint.Hit("sandbox/run/started"); err != nil {
		return "", err
	}
	sb.status = Status{State: StateReady, Pid: task.Pid()}
	return s.finishRun(sb, log)
}

// finishRun records a started sandbox and makes it visible.
func (s *Service) finishRun(sb *Sandbox, log klog.Logger) (string, error) {
	if err := s.persist(sb); err != nil {
		return "", err
	}
	s.store.Put(sb.ID, sb)
	if err := failpoint.Hit("sandbox/run/done"); err != nil {
		s.store.Delete(sb.ID)
		return "", err
	}
	s.publish(events.Created, sb)
	s.publish(events.Started, sb)
	log.V(2).Info("Pod sandbox running", "ips", sb.IPs, "pid", sb.status.Pid, "infraLess", sb.InfraLess)
	return sb.ID, nil
}

func (s *Service) publish(t events.Type, sb *Sandbox) {
	if s.opts.Events != nil {
		s.opts.Events.Publish(events.Event{Type: t, ContainerID: sb.ID, SandboxID: sb.ID})
	}
}

func runtimeOptions(h config.RuntimeHandler) any {
	if h.RuntimeType != config.DefaultRuntimeType {
		return nil
	}
	return &runcoptions.Options{BinaryName: h.BinaryName, Root: h.Root}
}

func (s *Service) cniPod(sb *Sandbox) cni.Pod {
	md := sb.Config.GetMetadata()
	pod := cni.Pod{ID: sb.ID, NetNS: sb.NetNSPath, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid()}
	for _, pm := range sb.Config.GetPortMappings() {
		if pm.HostPort <= 0 {
			continue
		}
		pod.Ports = append(pod.Ports, cni.PortMapping{
			HostPort: pm.HostPort, ContainerPort: pm.ContainerPort,
			Protocol: strings.ToLower(pm.Protocol.String()), HostIP: pm.HostIp,
		})
	}
	return pod
}

// persist writes the status file.
func (s *Service) persist(sb *Sandbox) error {
	return store.SaveJSON(s.statusPath(sb.ID), sb.Status())
}

// setStatus changes the status in memory and on disk.
func (s *Service) setStatus(sb *Sandbox, change func(st *Status)) error {
	sb.statusMu.Lock()
	change(&sb.status)
	sb.statusMu.Unlock()
	return s.persist(sb)
}

// Get resolves a sandbox by ID or unique ID prefix.
func (s *Service) Get(id string) (*Sandbox, error) {
	sb, _, err := s.store.Resolve(id)
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %w", err)
	}
	return sb, nil
}

// List returns every sandbox.
func (s *Service) List() []*Sandbox { return s.store.List() }

// Stop stops the sandbox's containers and infra process and tears down its network
// (CNI DEL; the netns stays until removal). Unknown IDs and repeats succeed.
func (s *Service) Stop(ctx context.Context, id string) error {
	sb, err := s.Get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	return s.stopLocked(ctx, sb)
}

func (s *Service) stopLocked(ctx context.Context, sb *Sandbox) error {
	if s.hooks.StopContainers != nil {
		if err := s.hooks.StopContainers(ctx, sb.ID); err != nil {
			return fmt.Errorf("stopping containers of pod sandbox %s: %w", sb.ID, err)
		}
	}
	if err := failpoint.Hit("sandbox/stop/containers"); err != nil {
		return err
	}
	if err := s.stopInfra(ctx, sb); err != nil {
		return err
	}
	if err := failpoint.Hit("sandbox/stop/infra"); err != nil {
		return err
	}
	if sb.ShmPath != "" {
		if err := unmountAll(sb.ShmPath); err != nil {
			return err
		}
	}
	if !sb.HostNetwork() && !sb.Status().NetworkDown {
		if err := s.network.Detach(ctx, s.cniPod(sb)); err != nil {
			return fmt.Errorf("tearing down network of pod sandbox %s: %w", sb.ID, err)
		}
	}
	if err := failpoint.Hit("sandbox/stop/network"); err != nil {
		return err
	}
	wasReady := sb.Status().State == StateReady
	if err := s.setStatus(sb, func(st *Status) {
		st.State, st.NetworkDown = StateNotReady, true
		if st.ExitedAt.IsZero() {
			st.ExitedAt = time.Now()
		}
	}); err != nil {
		return err
	}
	if wasReady {
		s.publish(events.Stopped, sb)
	}
	return nil
}

// stopInfra kills and deletes the infra task, if any.
func (s *Service) stopInfra(ctx context.Context, sb *Sandbox) error {
	if sb.InfraLess {
		return nil
	}
	container, err := s.client.LoadContainer(ctx, sb.ID)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading infra container %s: %w", sb.ID, err)
	}
	task, err := container.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading infra task %s: %w", sb.ID, err)
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stopping infra task %s: %w", sb.ID, err)
	}
	return nil
}

// Remove stops the sandbox if needed, removes its containers, network namespace,
// infra container, snapshot and files, and frees its name. Unknown IDs succeed.
func (s *Service) Remove(ctx context.Context, id string) error {
	sb, err := s.Get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if _, ok := s.store.Get(sb.ID); !ok {
		return nil // removed while we waited for the lock
	}
	if err := s.stopLocked(ctx, sb); err != nil {
		return err
	}
	if err := failpoint.Hit("sandbox/remove/stopped"); err != nil {
		return err
	}
	if s.hooks.RemoveContainers != nil {
		if err := s.hooks.RemoveContainers(ctx, sb.ID); err != nil {
			return fmt.Errorf("removing containers of pod sandbox %s: %w", sb.ID, err)
		}
	}
	if err := failpoint.Hit("sandbox/remove/containers"); err != nil {
		return err
	}
	if sb.NetNSPath != "" {
		if err := netns.Remove(sb.NetNSPath); err != nil {
			return err
		}
	}
	if err := s.unpin(sb); err != nil {
		return err
	}
	if err := failpoint.Hit("sandbox/remove/netns"); err != nil {
		return err
	}
	if err := s.client.ContainerService().Delete(ctx, sb.ID); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting infra container %s: %w", sb.ID, err)
	}
	if err := failpoint.Hit("sandbox/remove/container"); err != nil {
		return err
	}
	if err := s.client.SnapshotService(s.opts.Snapshotter).Remove(ctx, sb.ID); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("removing infra snapshot %s: %w", sb.ID, err)
	}
	if err := errors.Join(os.RemoveAll(s.stateDir(sb.ID)), os.RemoveAll(sb.Dir)); err != nil {
		return err
	}
	s.store.Delete(sb.ID)
	s.names.Release(sb.Name, sb.ID)
	s.publish(events.Deleted, sb)
	klog.V(2).InfoS("Pod sandbox removed", "podSandboxID", sb.ID)
	return nil
}

// onExit records that the infra process died (pause killed, OOM): the sandbox is
// NOTREADY and kubelet will stop and recreate it.
func (s *Service) onExit(id string, exitedAt time.Time) {
	sb, ok := s.store.Get(id)
	if !ok {
		return
	}
	wasReady := sb.Status().State == StateReady
	if err := s.setStatus(sb, func(st *Status) {
		st.State = StateNotReady
		st.ExitedAt = exitedAt
	}); err != nil {
		klog.ErrorS(err, "Recording sandbox exit", "podSandboxID", id)
	}
	if wasReady {
		s.publish(events.Stopped, sb)
	}
}
