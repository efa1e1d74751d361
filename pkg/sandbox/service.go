package sandbox

import (
	"context"
	"errors"
	"fmt"
	nriapi "github.com/containerd/nri/pkg/api"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/events"
	"github.com/keelson/keelson/pkg/failpoint"
	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/nri"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/selinux"
	"github.com/keelson/keelson/pkg/store"
	"github.com/keelson/keelson/pkg/validate"
)

// Options configure the sandbox service.
type Options struct {
	RootDir        string // sandbox files: <RootDir>/sandboxes/<id>
	StateDir       string // netns, shm and status files under <StateDir>
	Snapshotter    string
	Handlers       map[string]config.RuntimeHandler
	DefaultHandler string
	Events         *events.Broadcaster // lifecycle events (may be nil)
	PauseContainer string              // "auto" or "always" (config runtime.pause_container)
	Host           validate.Host       // what request validation knows of the node; Host.CgroupDriver is the driver in use
	// UserNamespaces says, per runtime handler, whether it can run pods with their own
	// user namespace: nil means yes, an error says why not; a handler not listed cannot.
	UserNamespaces map[string]error
	// SELinux labels pods and their files; nil: the node's.
	SELinux selinux.Labeler
	// Resize applies limits to a pod's cgroup (a directory in ParentDir's form); nil:
	// the node's cgroups (cgroups.Resize at cgroups.Root).
	Resize func(dir string, l cgroups.Limits) (bool, error)
	// NRI tells NRI plugins of pods; nil: NRI is off.
	NRI *nri.NRI
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
	if opts.SELinux == nil {
		opts.SELinux = selinux.Host{}
	}
	if opts.Resize == nil {
		opts.Resize = func(dir string, l cgroups.Limits) (bool, error) {
			return cgroups.Resize(cgroups.Root, cgroups.IsV2(), dir, l)
		}
	}
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

// keepResult is how long the result of a RunPodSandbox whose client gave up is kept
// for the client's retry.
const keepResult = 5 * time.Minute

// Run creates and starts a sandbox and returns its ID. The request is validated
// before anything happens. When the client's deadline passes first, the work goes on
// and a retry with the same pod gets its result (not "name is reserved").
func (s *Service) Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handlerName string) (string, error) {
	if err := validate.PodSandbox(cfg, s.opts.Host); err != nil {
		return "", err
	}
	if err := checkLogDirectory(cfg.GetLogDirectory()); err != nil {
		return "", err
	}
	if handlerName == "" {
		handlerName = s.opts.DefaultHandler
	}
	handler, ok := s.opts.Handlers[handlerName]
	if !ok {
		return "", fmt.Errorf("runtime_handler %q is not configured (runtime.handlers): %w", handlerName, errdefs.ErrInvalidArgument)
	}
	if _, _, ok := oci.PodUserNS(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()); ok {
		err, probed := s.opts.UserNamespaces[handlerName]
		if !probed {
			err = errors.New("not probed")
		}
		if err != nil {
			return "", fmt.Errorf("config.linux.security_context.namespace_options.userns_options: runtime handler %q cannot run pods with their own user namespace (hostUsers: false) on this node: %v: %w", handlerName, err, errdefs.ErrFailedPrecondition)
		}
	}
	return s.inflight.Do(ctx, podName(cfg.GetMetadata()), keepResult, func(ctx context.Context) (string, error) {
		return s.run(ctx, cfg, handlerName, handler)
	})
}

// finishRun records a started sandbox and makes it visible.
func (s *Service) finishRun(sb *Sandbox, log klog.Logger) (string, error) {
	s.store.Put(sb.ID, sb)
	// The sandbox is durable and known: its network needs no pending record now.
	s.network.Forget(sb.ID)
	if err := failpoint.Hit("sandbox/run/done"); err != nil {
		s.store.Delete(sb.ID)
		return "", err
	}
	s.publish(events.Created, sb)
	s.publish(events.Started, sb)
	log.V(2).Info("Pod sandbox running", "ips", sb.IPs, "pid", sb.Status().Pid, "infraLess", sb.InfraLess)
	return sb.ID, nil
}

func (s *Service) publish(t events.Type, sb *Sandbox) {
	if s.opts.Events != nil {
		s.opts.Events.Publish(events.Event{Type: t, ContainerID: sb.ID, SandboxID: sb.ID})
	}
}

func (s *Service) runtimeOptions(h config.RuntimeHandler) any {
	return runtime.HandlerOptions(h, s.opts.Host.CgroupDriver == cgroups.Systemd)
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

// lock takes the sandbox's lock for a stop or removal. It returns false (holding
// nothing) when the sandbox was removed while the caller waited.
func lock(sb *Sandbox) bool {
	sb.mu.Lock()
	if sb.status.Removed() {
		sb.mu.Unlock()
		return false
	}
	return true
}

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
	if !lock(sb) {
		return nil
	}
	defer sb.mu.Unlock()
	return s.stopLocked(ctx, sb)
}

func (s *Service) stopLocked(ctx context.Context, sb *Sandbox) error {
	// NRI plugins hear of the stop once (while the pod was ready), with its
	// containers stopped and the pod itself still whole — before the infra task,
	// whose exit would make it not ready, and the network go.
	tellNRI := s.opts.NRI != nil && sb.Status().State == StateReady
	if s.hooks.StopContainers != nil {
		if err := s.hooks.StopContainers(ctx, sb.ID); err != nil {
			return fmt.Errorf("stopping containers of pod sandbox %s: %w", sb.ID, err)
		}
	}
	if tellNRI {
		s.opts.NRI.StopPodSandbox(ctx, sb.NRIPod())
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
		if err := s.teardownNetwork(ctx, sb); err != nil {
			return fmt.Errorf("tearing down network of pod sandbox %s: %w", sb.ID, err)
		}
	}
	if err := failpoint.Hit("sandbox/stop/network"); err != nil {
		return err
	}
	wasReady := sb.Status().State == StateReady
	if err := sb.status.Update(func(st *Status) bool {
		st.State, st.NetworkDown = StateNotReady, true
		if st.ExitedAt.IsZero() {
			st.ExitedAt = time.Now()
		}
		return true
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
		if sb.Status().Pid != 0 {
			return nil // it ran, and was deleted by keelson
		}
		// Never started: a creation cut short may live on in the shim (see
		// runtime.DeleteStrayTask).
		if _, err := s.conn.DeleteStrayTask(ctx, sb.ID, sb.ID); err != nil {
			klog.ErrorS(err, "Deleting an infra task its shim may hold (keelson doctor lists the shim)", "podSandboxID", sb.ID)
		}
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
	if !lock(sb) {
		return nil // removed while we waited for the lock
	}
	defer sb.mu.Unlock()
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
	if !sb.InfraLess {
		// Left by an infra task creation cut short, if at all.
		if err := cgroups.Remove(oci.SpecCgroupsPath(sb.Spec())); err != nil {
			klog.ErrorS(err, "Removing the pause container's cgroup (keelson doctor lists it)", "podSandboxID", sb.ID)
		}
	}
	s.conn.EndPodShim(sb.ID)
	var nriPod *nriapi.PodSandbox
	if s.opts.NRI != nil {
		nriPod = sb.NRIPod()
	}
	// From here on nothing may write the sandbox's files again.
	if err := errors.Join(sb.status.Remove(), os.RemoveAll(s.stateDir(sb.ID)), os.RemoveAll(sb.Dir)); err != nil {
		return err
	}
	s.opts.SELinux.Release(sb.SELinux)
	s.network.Forget(sb.ID)
	s.store.Delete(sb.ID)
	s.names.Release(sb.Name, sb.ID)
	s.publish(events.Deleted, sb)
	if nriPod != nil {
		s.opts.NRI.RemovePodSandbox(ctx, nriPod)
	}
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
	wasReady := false
	err := sb.status.Update(func(st *Status) bool {
		wasReady = st.State == StateReady
		st.State = StateNotReady
		st.ExitedAt = exitedAt
		return true
	})
	if err != nil && !errors.Is(err, store.ErrRemoved) {
		klog.ErrorS(err, "Recording sandbox exit", "podSandboxID", id)
	}
	if wasReady {
		s.publish(events.Stopped, sb)
	}
}
