package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	nriapi "github.com/containerd/nri/pkg/api"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel/attribute"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/criu"
	"github.com/keelson/keelson/pkg/devices"
	"github.com/keelson/keelson/pkg/events"
	"github.com/keelson/keelson/pkg/failpoint"
	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/nri"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/sandbox"
	"github.com/keelson/keelson/pkg/selinux"
	"github.com/keelson/keelson/pkg/store"
	"github.com/keelson/keelson/pkg/tracing"
	"github.com/keelson/keelson/pkg/undo"
	"github.com/keelson/keelson/pkg/validate"
)

// Options configure the container service.
type Options struct {
	StateDir     string // status files: <StateDir>/containers/<id>
	Snapshotter  string
	Handlers     map[string]config.RuntimeHandler
	LoggerBinary string // keelson-logger
	LoggerV2     bool   // the shims understand the binary-v2 log URI scheme
	PidsLimit    int64
	// RecursiveReadOnly lists the runtime handlers that (with this kernel) support
	// recursive read-only mounts.
	RecursiveReadOnly map[string]bool
	// Events receives lifecycle events (may be nil).
	Events *events.Broadcaster
	// Host is what request validation knows of the node.
	Host validate.Host
	// AppArmor: the host enforces AppArmor and can load profiles; containers that
	// ask for no profile get keelson's default one (privileged ones excepted).
	AppArmor bool
	// SELinux labels containers and relabels their mounts; nil: the node's.
	SELinux selinux.Labeler
	// CDI applies CDI devices to specs; nil: CDI is off (config cdi.enabled).
	CDI interface {
		Inject(spec *specs.Spec, names []string) error
	}
	// NRI tells NRI plugins of containers and lets them adjust new ones; nil: off.
	NRI *nri.NRI
	// CRIU checks that checkpoint/restore can run; nil: off.
	CRIU *criu.Checker
	// Restore: containerd restores tasks from a checkpoint directory (2.0 and later).
	Restore bool
	// RootDir keeps what must outlive a reboot or be large: <RootDir>/containers/<id>
	// holds a restored container's checkpoint.
	RootDir string
}

// Service manages containers.
type Service struct {
	conn      *runtime.Conn
	client    *containerd.Client
	images    *keelsonimages.Service
	sandboxes *sandbox.Service
	opts      Options
	ownOOM    int

	store      *store.Store[*Container]
	names      store.Names
	inflight   store.Inflight[string]
	imageFiles *imageFiles
	shims      shimWatch
	// volumeUsers follows store: every container listed there with image volumes.
	volumeUsers imageVolumeIndex
}

// New returns the service; Load recovers existing containers.
func New(conn *runtime.Conn, imgs *keelsonimages.Service, sandboxes *sandbox.Service, opts Options) *Service {
	if opts.SELinux == nil {
		opts.SELinux = selinux.Host{}
	}
	s := &Service{
		conn: conn, client: conn.Client, images: imgs, sandboxes: sandboxes, opts: opts,
		ownOOM: oci.OwnOOMScoreAdj(), store: store.NewStore[*Container](),
	}
	s.imageFiles = newImageFiles(s.client, opts.Snapshotter)
	return s
}

// remember makes c known: in the store and the image volume index.
func (s *Service) remember(c *Container) {
	s.store.Put(c.ID, c)
	s.volumeUsers.add(c)
}

// forget undoes remember.
func (s *Service) forget(c *Container) {
	s.store.Delete(c.ID)
	s.volumeUsers.remove(c)
}

func (s *Service) stateDir(id string) string      { return filepath.Join(s.opts.StateDir, "containers", id) }
func (s *Service) statusPath(id string) string    { return filepath.Join(s.stateDir(id), "status.json") }
func (s *Service) loggerPidPath(id string) string { return filepath.Join(s.stateDir(id), "logger.pid") }
func (s *Service) fifoDir() string                { return filepath.Join(s.opts.StateDir, "fifo") }
func (s *Service) exitPath(id string) string      { return filepath.Join(s.stateDir(id), "shim-exit.json") }

// containerName is the unique name kubelet's retries must not duplicate.
func containerName(cfg *runtimeapi.ContainerConfig, sb *sandbox.Sandbox) string {
	md, pmd := cfg.GetMetadata(), sb.Config.GetMetadata()
	return strings.Join([]string{md.GetName(), pmd.GetName(), pmd.GetNamespace(), pmd.GetUid(), fmt.Sprint(md.GetAttempt())}, "_")
}

// logPath joins the pod's log directory and the container's relative log path,
// refusing paths that escape the directory.
func logPath(dir, rel string) (string, error) {
	if rel == "" || dir == "" {
		return "", nil
	}
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("log_path %q must be relative to the pod's log directory and stay inside it: %w", rel, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(dir, rel), nil
}

// keepResult is how long the result of a CreateContainer whose client gave up is kept
// for the client's retry.
const keepResult = 5 * time.Minute

// Create makes a container in a ready sandbox: request validated, name reserved, spec
// built, containerd container with its root filesystem snapshot. The task comes at
// Start. When the client's deadline passes first, the work goes on and a retry with
// the same name gets its result.
func (s *Service) Create(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig) (string, error) {
	if err := validate.Container(cfg, s.opts.Host); err != nil {
		return "", err
	}
	cdiDevices, err := devices.Requested(cfg)
	if err != nil {
		return "", err
	}
	if len(cdiDevices) > 0 && s.opts.CDI == nil {
		return "", fmt.Errorf("config.CDI_devices: CDI devices %v asked for, but CDI is off on this node (cdi.enabled): %w", cdiDevices, errdefs.ErrFailedPrecondition)
	}
	if checkpointArchive(cfg) != "" {
		// The first CRIU check can take seconds: made before create holds the sandbox,
		// so a concurrent StopPodSandbox does not wait on it (the result is cached).
		if err := s.opts.CRIU.Check(); err != nil {
			return "", err
		}
	}
	sb, err := s.sandboxes.Get(sandboxID)
	if err != nil {
		return "", err
	}
	return s.inflight.Do(ctx, containerName(cfg, sb), keepResult, func(ctx context.Context) (string, error) {
		return s.create(ctx, sb, cfg, cdiDevices)
	})
}

// create holds the sandbox for its whole run, so a concurrent StopPodSandbox or
// RemovePodSandbox waits for it and then sees (and stops) the new container, rather
// than leaving it behind.
func (s *Service) create(ctx context.Context, sb *sandbox.Sandbox, cfg *runtimeapi.ContainerConfig, cdiDevices []string) (_ string, retErr error) {
	release, err := sb.Hold()
	if err != nil {
		return "", err
	}
	defer release()
	archive := checkpointArchive(cfg)
	if archive != "" {
		if cfg, err = s.restoreInput(cfg, archive); err != nil {
			return "", err
		}
	}
	img, err := s.images.Get(cfg.GetImage().GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("image %q not found: pull it before creating a container: %w", cfg.GetImage().GetImage(), errdefs.ErrNotFound)
		}
		return "", err
	}
	lp, err := logPath(sb.Config.GetLogDirectory(), cfg.GetLogPath())
	if err != nil {
		return "", err
	}
	handler, ok := s.opts.Handlers[sb.RuntimeHandler]
	if !ok {
		return "", fmt.Errorf("runtime handler %q of pod sandbox %s is no longer configured: %w", sb.RuntimeHandler, sb.ID, errdefs.ErrFailedPrecondition)
	}

	id := store.NewID()
	name := containerName(cfg, sb)
	if err := s.names.Reserve(name, id); err != nil {
		return "", fmt.Errorf("container %s: %w", name, err)
	}
	var steps undo.Stack
	steps.Push("release the name", func(context.Context) error { s.names.Release(name, id); return nil })
	defer func() {
		if retErr != nil {
			_ = steps.Run("containerID", id)
		}
	}()
	if err := failpoint.Hit("container/create/reserved"); err != nil {
		return "", err
	}

	c := &Container{Metadata: Metadata{
		ID: id, Name: name, SandboxID: sb.ID, Config: cfg,
		ImageName: cfg.GetImage().GetImage(), ImageID: img.ID, ImageRef: img.ID,
		LogPath: lp, StopSignal: stopSignalName(cfg.GetStopSignal(), img.Spec.Config.StopSignal), CreatedAt: nowNano(),
	}, exited: make(chan struct{})}
	if len(img.RepoDigests) > 0 {
		c.ImageRef = img.RepoDigests[0]
	}
	// kubelet creates containers by image ID; report the name the user wrote.
	if u := cfg.GetImage().GetUserSpecifiedImage(); u != "" {
		c.ImageName = u
	} else if strings.HasPrefix(c.ImageName, "sha256:") && len(img.RepoTags) > 0 {
		c.ImageName = img.RepoTags[0]
	}
	specCfg, err := s.mountImageVolumes(ctx, id, cfg, &steps)
	if err != nil {
		return "", err
	}
	nsCtx := namespaces.WithNamespace(ctx, s.conn.Namespace)
	labels, err := s.opts.SELinux.Container(sb.SELinux, cfg.GetLinux().GetSecurityContext().GetSelinuxOptions())
	if err != nil {
		return "", fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	specCtx, specSpan := tracing.Start(ctx, "container.create.spec", attribute.String("container.id", id))
	spec, err := oci.ContainerSpec(nsCtx, oci.ContainerInput{
		ID: id, Config: specCfg, SandboxConfig: sb.Config, Image: img.Spec.Config, ImageName: c.ImageName,
		Sandbox:                    s.sandboxFacts(sb),
		OwnOOM:                     s.ownOOM,
		PidsLimit:                  s.opts.PidsLimit,
		RecursiveReadOnlySupported: s.opts.RecursiveReadOnly[sb.RuntimeHandler],
		ReadImageFile:              func(p string) ([]byte, error) { return s.imageFiles.read(specCtx, img, p) },
		TargetPID:                  s.targetPID(cfg),
		CgroupDriver:               s.opts.Host.CgroupDriver,
		AppArmorEnabled:            s.opts.AppArmor,
		SELinux:                    labels,
	})
	tracing.End(specSpan, err)
	if err != nil {
		return "", err
	}
	if handler.OCIVersion != "" {
		spec.Version = handler.OCIVersion
	}
	if len(cdiDevices) > 0 {
		if err := s.opts.CDI.Inject(spec, cdiDevices); err != nil {
			return "", err
		}
	}
	if s.opts.NRI != nil {
		// Until the container is listed, no plugin synchronizes (it would miss it).
		defer s.opts.NRI.BlockSync()()
		pod := sb.NRIPod()
		ctr := nri.Container(cfg, spec, nri.ContainerFacts{ID: id, PodID: sb.ID, State: nriapi.ContainerState_CONTAINER_CREATED, CreatedAt: c.CreatedAt})
		if err := s.opts.NRI.CreateContainer(ctx, pod, ctr, spec); err != nil {
			return "", err
		}
		steps.Push("tell NRI plugins the container is gone", func(ctx context.Context) error {
			s.opts.NRI.RemoveContainer(ctx, pod, ctr)
			return nil
		})
	}
	if err := makeHostPaths(cfg.GetMounts()); err != nil {
		return "", err
	}
	for _, m := range cfg.GetMounts() {
		if m.GetSelinuxRelabel() && m.GetImage().GetImage() == "" {
			if err := s.opts.SELinux.Relabel(m.GetHostPath(), labels, false); err != nil {
				return "", err
			}
		}
	}
	if archive != "" {
		steps.Push("remove the extracted checkpoint", func(context.Context) error { return s.removeRestoreDir(id) })
		if err := s.extractCheckpoint(id, archive); err != nil {
			return "", err
		}
		c.RestoreFrom = s.restoreDir(id)
	}
	if err := c.Metadata.encode(); err != nil {
		return "", err
	}
	c.spec, _ = json.Marshal(spec)
	if err := failpoint.Hit("container/create/spec"); err != nil {
		return "", err
	}

	image := containerd.NewImageWithPlatform(s.client, images.Image{Name: img.ID, Target: img.Target}, platforms.Default())
	recCtx, recSpan := tracing.Start(ctx, "container.create.record", attribute.String("container.id", id))
	cc, err := s.client.NewContainer(recCtx, id,
		containerd.WithSnapshotter(s.opts.Snapshotter),
		containerd.WithNewSnapshot(id, image, oci.SnapshotOpts(sb.UserNS())...),
		containerd.WithRuntime(handler.RuntimeType, s.restoreOptions(s.runtimeOptions(handler), c.RestoreFrom)),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{LabelKind: KindContainer, LabelSandbox: sb.ID}),
		containerd.WithContainerExtension(ExtensionKey, &c.Metadata),
	)
	tracing.End(recSpan, err)
	if err != nil {
		return "", fmt.Errorf("creating container: %w", err)
	}
	steps.Push("delete container", func(ctx context.Context) error {
		err := cc.Delete(ctx, containerd.WithSnapshotCleanup)
		if errdefs.IsNotFound(err) {
			err = nil
		}
		return errors.Join(err, os.RemoveAll(s.stateDir(id)))
	})
	if err := failpoint.Hit("container/create/container"); err != nil {
		return "", err
	}
	c.status = store.NewStatus(s.statusPath(id), Status{State: StateCreated})
	if err := c.status.Save(); err != nil {
		return "", err
	}
	s.remember(c)
	steps.Push("forget container", func(context.Context) error { s.forget(c); return nil })
	if err := failpoint.Hit("container/create/done"); err != nil {
		return "", err
	}
	s.publish(events.Created, c)
	s.nriEvent(c, func(pod *nriapi.PodSandbox, ctr *nriapi.Container) { s.opts.NRI.PostCreateContainer(ctx, pod, ctr) })
	klog.V(2).InfoS("Container created", "containerID", id, "name", name, "podSandboxID", sb.ID)
	return id, nil
}

// newTask creates the container's task with fresh stdio. A pod's containers share
// one shim: when the pod's last task has just gone, that shim can still pass the
// connection test of containerd's shim manager and then exit, and the creation
// fails with "connection refused"; a retry starts a new shim.
func (s *Service) newTask(ctx context.Context, cc containerd.Container, c *Container) (containerd.Task, *containerIO, error) {
	for attempt := 1; ; attempt++ {
		creator, cio0, err := s.ioCreator(c)
		if err != nil {
			return nil, nil, fmt.Errorf("setting up stdio of container %s: %w", c.ID, err)
		}
		if err := failpoint.Hit("container/start/io"); err != nil {
			cio0.close()
			return nil, nil, err
		}
		task, err := cc.NewTask(ctx, creator)
		if err == nil {
			return task, cio0, nil
		}
		cio0.close()
		if attempt == 3 || !shimWentAway(err) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("creating task of container %s: %w", c.ID, err)
		}
		klog.V(2).InfoS("The pod's shim went away while the task was being created; retrying", "containerID", c.ID, "err", err)
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

// shimWentAway recognises containerd's errors for a pod's shim that exited (its last
// task gone) while a new task was handed to it: between its manager's connection test
// and containerd's own connection, or during the create call itself.
func shimWentAway(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to start shim") &&
		(strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such file or directory")) ||
		strings.Contains(msg, "failed to create shim task") && strings.Contains(msg, "ttrpc: closed")
}

// makeHostPaths creates the missing host directories of bind mounts, as containerd's
// CRI does: kubelet relies on it for hostPath volumes of type "".
func makeHostPaths(ms []*runtimeapi.Mount) error {
	for _, m := range ms {
		p := m.GetHostPath()
		if p == "" || m.GetImage().GetImage() != "" {
			continue
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return fmt.Errorf("creating the missing host_path %s of the mount at %s: %w", p, m.GetContainerPath(), err)
			}
		}
	}
	return nil
}

func (s *Service) publish(t events.Type, c *Container) {
	if s.opts.Events != nil {
		s.opts.Events.Publish(events.Event{Type: t, ContainerID: c.ID, SandboxID: c.SandboxID})
	}
}

func (s *Service) runtimeOptions(h config.RuntimeHandler) any {
	return runtime.HandlerOptions(h, s.opts.Host.CgroupDriver == cgroups.Systemd)
}

// sandboxFacts tells the spec builder about the pod.
func (s *Service) sandboxFacts(sb *sandbox.Sandbox) oci.SandboxFacts {
	f := oci.SandboxFacts{
		ID: sb.ID, Pid: sb.Status().Pid, NetNSPath: sb.NetNSPath,
		HostNetwork: sb.HostNetwork(), HostIPC: sb.HostIPC(), HostPID: sb.HostPID(),
		Hostname:     sb.Config.GetHostname(),
		HostnamePath: filepath.Join(sb.Dir, sandbox.HostnameFile),
		HostsPath:    filepath.Join(sb.Dir, sandbox.HostsFile),
		ShmPath:      sb.ShmPath,
		InfraLess:    sb.InfraLess,
		IPCNSPath:    sb.IPCNSPath,
		UTSNSPath:    sb.UTSNSPath,
		UserNS:       sb.UserNS(),
		CgroupParent: sb.Config.GetLinux().GetCgroupParent(),
	}
	if _, err := os.Stat(filepath.Join(sb.Dir, sandbox.ResolvConfFile)); err == nil {
		f.ResolvConfPath = filepath.Join(sb.Dir, sandbox.ResolvConfFile)
	}
	return f
}

// targetPID is the pid of the container a TARGET pid namespace names (0 if none).
func (s *Service) targetPID(cfg *runtimeapi.ContainerConfig) uint32 {
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetPid() != runtimeapi.NamespaceMode_TARGET {
		return 0
	}
	c, _, err := s.store.Resolve(ns.GetTargetId())
	if err != nil {
		return 0
	}
	return c.Status().Pid
}

// Get resolves a container by ID or unique ID prefix.
func (s *Service) Get(id string) (*Container, error) {
	c, _, err := s.store.Resolve(id)
	if err != nil {
		return nil, fmt.Errorf("container %w", err)
	}
	return c, nil
}

// List returns every container.
func (s *Service) List() []*Container { return s.store.List() }

// Start creates the container's task with its stdio and starts it. A failure leaves
// the container EXITED with reason StartError, as kubelet expects. The sandbox is
// held meanwhile, so it cannot be stopped under a starting container.
func (s *Service) Start(ctx context.Context, id string) (retErr error) {
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	sb, err := s.sandboxes.Get(c.SandboxID)
	if err != nil {
		return err
	}
	release, err := sb.Hold()
	if err != nil {
		return fmt.Errorf("starting container %s: %w", c.ID, err)
	}
	defer release()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.Removed() {
		return fmt.Errorf("container %s was removed: %w", c.ID, errdefs.ErrNotFound)
	}
	if st := c.Status().State; st != StateCreated {
		return fmt.Errorf("container %s is %s; only a CREATED container can start: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	defer func() {
		if retErr != nil {
			_ = c.status.Update(func(st *Status) bool {
				st.State, st.ExitCode, st.Reason, st.Message = StateExited, 128, ReasonStartError, retErr.Error()
				st.FinishedAt = nowNano()
				return true
			})
			closeOnce(c.exited)
			s.publish(events.Stopped, c)
		}
	}()
	cc, err := s.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("loading container %s: %w", c.ID, err)
	}
	if err := os.MkdirAll(s.stateDir(c.ID), 0o700); err != nil {
		return err
	}
	newTask := s.newTask
	if c.RestoreFrom != "" {
		newTask = s.restoreTask
	}
	taskCtx, taskSpan := tracing.Start(ctx, "container.start.task", attribute.String("container.id", c.ID))
	task, cio0, err := newTask(taskCtx, cc, c)
	tracing.End(taskSpan, err)
	if err != nil {
		return err
	}
	c.io = cio0
	defer func() {
		if retErr == nil {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), undo.Timeout)
		defer cancel()
		if _, derr := task.Delete(dctx, containerd.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			klog.ErrorS(derr, "Undo: deleting task", "containerID", c.ID)
		}
		cio0.close()
		c.io = nil
	}()
	if err := failpoint.Hit("container/start/task"); err != nil {
		return err
	}
	c.oomBase.Store(0)
	if n, ok := cgroups.ParentOOMKills(oci.SpecCgroupsPath(c.Spec())); ok {
		c.oomBase.Store(int64(n) + 1)
	}
	if s.opts.NRI != nil {
		if err := s.opts.NRI.StartContainer(ctx, sb.NRIPod(), c.NRIContainer()); err != nil {
			return err
		}
	}
	startedAt := nowNano()
	if c.RestoreFrom == "" { // a restored task runs already
		startCtx, span := tracing.Start(ctx, "container.start.process", attribute.String("container.id", c.ID))
		err := task.Start(startCtx)
		tracing.End(span, err)
		if err != nil {
			return fmt.Errorf("starting container %s: %w", c.ID, err)
		}
	}
	if err := failpoint.Hit("container/start/started"); err != nil {
		return err
	}
	if err := c.status.Update(func(st *Status) bool {
		st.Pid, st.StartedAt = task.Pid(), startedAt
		// A process that exits at once may have been recorded as exited already.
		if st.State != StateExited {
			st.State = StateRunning
		}
		return true
	}); err != nil {
		return err
	}
	s.publish(events.Started, c)
	s.nriEvent(c, func(pod *nriapi.PodSandbox, ctr *nriapi.Container) { s.opts.NRI.PostStartContainer(ctx, pod, ctr) })
	klog.V(2).InfoS("Container started", "containerID", c.ID, "pid", task.Pid())
	return nil
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// Stop sends the stop signal, waits up to timeout, then SIGKILL. Idempotent; unknown
// IDs and containers that are not running succeed. The container's lock is not held
// while the grace period runs: a status, an exec or a concurrent Stop is not held up.
func (s *Service) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := s.Get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if timeout > 0 {
		exited, err := s.signal(ctx, c)
		if err != nil {
			return err
		}
		if exited != nil {
			t := time.NewTimer(timeout)
			select {
			case <-exited:
			case <-t.C:
				klog.V(2).InfoS("Container did not stop in time; killing it", "containerID", c.ID, "timeout", timeout)
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			t.Stop()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.Removed() {
		return nil
	}
	return s.killLocked(ctx, c)
}

// signal sends a running container its stop signal and returns a channel closed once
// it has exited; nil if it is not running.
func (s *Service) signal(ctx context.Context, c *Container) (<-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.Status().State; c.status.Removed() || (st != StateRunning && st != StateUnknown) {
		return nil, nil
	}
	task, err := s.runningTask(ctx, c)
	if task == nil || err != nil {
		return nil, err
	}
	if err := task.Kill(ctx, stopSignal(c.StopSignal)); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("signalling container %s: %w", c.ID, err)
	}
	return c.exited, nil
}

// runningTask loads the task of a container thought running; nil (and the exit
// recorded) when the task or the container record is gone.
func (s *Service) runningTask(ctx context.Context, c *Container) (containerd.Task, error) {
	cc, err := s.client.LoadContainer(ctx, c.ID)
	if errdefs.IsNotFound(err) {
		s.recordExit(c, 255, time.Now(), "container record is gone")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	task, err := cc.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		s.recordExit(c, 255, time.Now(), "task is gone")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loading task of container %s: %w", c.ID, err)
	}
	return task, nil
}

// killLocked kills a running container (SIGKILL to all its processes) and waits for
// the exit. c.mu is held.
func (s *Service) killLocked(ctx context.Context, c *Container) error {
	if st := c.Status().State; st != StateRunning && st != StateUnknown {
		return nil
	}
	task, err := s.runningTask(ctx, c)
	if task == nil || err != nil {
		return err
	}
	// Wait before signalling, so the exit cannot be missed.
	waitCh, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("waiting for container %s: %w", c.ID, err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("killing container %s: %w", c.ID, err)
	}
	select {
	case es := <-waitCh:
		return s.finishExit(ctx, c, task, es)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finishExit records an exit seen through Wait and deletes the task.
func (s *Service) finishExit(ctx context.Context, c *Container, task containerd.Task, es containerd.ExitStatus) error {
	code, at, err := es.Result()
	if err != nil {
		return fmt.Errorf("exit status of container %s: %w", c.ID, err)
	}
	s.recordExit(c, int32(code), at, "")
	s.deleteTask(ctx, c, task)
	return nil
}

// recordExit stores an exit once (events and Wait may both report it).
func (s *Service) recordExit(c *Container, code int32, at time.Time, message string) {
	reason := ReasonCompleted
	switch {
	case c.oom.Load() || code != 0 && s.oomKilled(c):
		reason = ReasonOOMKilled
	case code != 0:
		reason = ReasonError
	}
	if at.IsZero() {
		at = time.Now()
	}
	changed := false
	err := c.status.Update(func(st *Status) bool {
		if st.State == StateExited {
			return false
		}
		st.State, st.ExitCode, st.Reason, st.FinishedAt = StateExited, code, reason, at.UnixNano()
		if message != "" {
			st.Message = message
		}
		changed = true
		return true
	})
	if err != nil && !errors.Is(err, store.ErrRemoved) {
		klog.ErrorS(err, "Persisting container exit", "containerID", c.ID)
	}
	if !changed {
		return
	}
	// Plugins hear of it before whoever waits for the exit goes on (a pod's stop
	// tells them of the pod after its containers).
	s.nriEvent(c, func(pod *nriapi.PodSandbox, ctr *nriapi.Container) {
		s.opts.NRI.StopContainer(context.Background(), pod, ctr)
	})
	closeOnce(c.exited)
	s.publish(events.Stopped, c)
	klog.V(2).InfoS("Container exited", "containerID", c.ID, "exitCode", code, "reason", reason)
}

// deleteTask removes the exited task (its shim goes away) and keelson's stdio.
func (s *Service) deleteTask(ctx context.Context, c *Container, task containerd.Task) {
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		klog.ErrorS(err, "Deleting exited task", "containerID", c.ID)
	}
	if c.io != nil {
		c.io.close()
		c.io = nil
	}
}

// Remove stops the container if needed and deletes its task, containerd container,
// snapshot and state; the log file stays (kubelet owns it). Unknown IDs succeed.
func (s *Service) Remove(ctx context.Context, id string) error {
	c, err := s.Get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.Removed() {
		return nil
	}
	if err := s.killLocked(ctx, c); err != nil {
		return err
	}
	if err := s.deleteRecord(ctx, c); err != nil {
		return err
	}
	if c.io != nil {
		c.io.close()
		c.io = nil
	}
	if hasImageVolumes(c.Config) {
		if err := s.removeImageVolumes(ctx, c.ID); err != nil {
			return fmt.Errorf("removing the image volumes of container %s: %w", c.ID, err)
		}
	}
	if err := s.removeRestoreDir(c.ID); err != nil {
		return fmt.Errorf("removing the checkpoint container %s was restored from: %w", c.ID, err)
	}
	// runc removes the cgroup with the task; a task creation cut short (keelson
	// killed inside it) can leave it, with a runc init inside.
	if err := cgroups.Remove(oci.SpecCgroupsPath(c.Spec())); err != nil {
		klog.ErrorS(err, "Removing the container's cgroup (keelson doctor lists it)", "containerID", c.ID)
	}
	// From here on nothing may write the container's files again.
	if err := errors.Join(c.status.Remove(), os.RemoveAll(s.stateDir(c.ID))); err != nil {
		return err
	}
	s.forget(c)
	s.names.Release(c.Name, c.ID)
	s.publish(events.Deleted, c)
	s.nriEvent(c, func(pod *nriapi.PodSandbox, ctr *nriapi.Container) { s.opts.NRI.RemoveContainer(ctx, pod, ctr) })
	klog.V(2).InfoS("Container removed", "containerID", c.ID)
	return nil
}

// deleteStrayTask deletes the task of a container that containerd does not know
// but the pod's shim may still hold: a creation cut short by a kill (see
// runtime.DeleteStrayTask). Otherwise that shim would never exit.
// deleteRecord deletes what containerd holds of a container that is not running: a
// task left (exited while keelson was down), its snapshot, its record — each one call
// by ID, three round trips where the client's load-then-delete takes six (the
// in-process CRI pays none; RemoveContainer was 2× its latency).
func (s *Service) deleteRecord(ctx context.Context, c *Container) error {
	if _, err := s.client.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: c.ID}); err == nil {
		klog.V(4).InfoS("Deleted a task left behind", "containerID", c.ID)
	} else if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
		klog.ErrorS(err, "Deleting exited task", "containerID", c.ID)
	} else if c.Status().StartedAt == 0 {
		// Never started: its task creation may have been cut short. (A task that
		// ran was deleted by keelson; no scan of the shims for those.)
		s.deleteStrayTask(ctx, c)
	}
	err := s.client.SnapshotService(s.opts.Snapshotter).Remove(ctx, c.ID)
	if errdefs.IsNotFound(err) {
		// Made under another snapshotter (the config changed since) or gone: let the
		// client find it from the record.
		cc, lerr := s.client.LoadContainer(ctx, c.ID)
		if errdefs.IsNotFound(lerr) {
			return nil
		}
		if lerr != nil {
			return fmt.Errorf("loading container %s: %w", c.ID, lerr)
		}
		err = cc.Delete(ctx, containerd.WithSnapshotCleanup)
	} else if err == nil {
		err = s.client.ContainerService().Delete(ctx, c.ID)
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("deleting container %s: %w", c.ID, err)
	}
	return nil
}

func (s *Service) deleteStrayTask(ctx context.Context, c *Container) {
	if _, err := s.conn.DeleteStrayTask(ctx, c.SandboxID, c.ID); err != nil {
		klog.ErrorS(err, "Deleting a task its shim may hold (keelson doctor lists the shim)", "containerID", c.ID)
	}
}

// StopPod stops every container of a sandbox (sandbox hook). Containers get no grace
// period here: kubelet stops them with theirs before it stops the pod.
func (s *Service) StopPod(ctx context.Context, sandboxID string) error {
	var errs []error
	for _, c := range s.store.List() {
		if c.SandboxID == sandboxID {
			errs = append(errs, s.Stop(ctx, c.ID, 0))
		}
	}
	return errors.Join(errs...)
}

// RemovePod removes every container of a sandbox (sandbox hook).
func (s *Service) RemovePod(ctx context.Context, sandboxID string) error {
	var errs []error
	for _, c := range s.store.List() {
		if c.SandboxID == sandboxID {
			errs = append(errs, s.Remove(ctx, c.ID))
		}
	}
	return errors.Join(errs...)
}
