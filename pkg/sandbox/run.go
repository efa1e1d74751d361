package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/failpoint"
	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/store"
	"github.com/keelson/keelson/pkg/tracing"
	"github.com/keelson/keelson/pkg/undo"
)

// creation is one RunPodSandbox in progress: the sandbox being made, the steps
// taken so far (to undo them if a later one fails), and the network coming up
// beside the rest.
type creation struct {
	s       *Service
	sb      *Sandbox
	handler config.RuntimeHandler
	log     klog.Logger
	undo    undo.Stack

	net       chan netResult // holds the network result once it is in (read with awaitNetwork)
	image     *keelsonimages.Image
	spec      *specs.Spec
	container containerd.Container // the durable record, once made
	// unblockNRI lets NRI plugins synchronize again once the pod is listed.
	unblockNRI func()
}

type netResult struct {
	res *cni.Result
	err error
}

// run does Run's work step by step. Every step is undone if a later one fails; if
// an undo fails, the sandbox is kept NOTREADY for Stop/Remove to finish.
func (s *Service) run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handlerName string, handler config.RuntimeHandler) (_ string, retErr error) {
	id := store.NewID()
	name := podName(cfg.GetMetadata())
	if err := s.names.Reserve(name, id); err != nil {
		return "", fmt.Errorf("pod sandbox %s: %w", name, err)
	}
	c := &creation{s: s, handler: handler, net: make(chan netResult, 1)}
	c.sb = &Sandbox{Metadata: Metadata{
		ID: id, Name: name, Config: cfg, RuntimeHandler: handlerName, RuntimeType: handler.RuntimeType,
		Dir: s.filesDir(id), CreatedAt: time.Now().UnixNano(),
	}, status: store.NewStatus(s.statusPath(id), Status{State: StateNotReady})}
	if !c.sb.HostNetwork() {
		c.sb.NetNSPath = s.netnsPath(id)
	}
	if !c.sb.HostIPC() {
		c.sb.ShmPath = filepath.Join(s.stateDir(id), "shm")
	}
	// A pod whose containers share one PID namespace needs a process to hold it and
	// reap zombies: the pause container. Others keep their namespaces pinned by bind
	// mounts, with no process at all.
	c.sb.InfraLess = s.opts.PauseContainer != "always" &&
		cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() != runtimeapi.NamespaceMode_POD
	if _, _, ok := oci.PodUserNS(cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()); ok {
		c.sb.UserNSPath = s.pinPath(id, "user")
	}
	c.log = klog.FromContext(ctx).WithValues("podSandboxID", id, "pod", name)
	defer func() {
		if retErr != nil {
			retErr = c.rollback(retErr)
		}
	}()
	if err := failpoint.Hit("sandbox/run/reserved"); err != nil {
		return "", err
	}

	type step struct {
		name string
		do   func(context.Context) error
	}
	steps := []step{{"label", c.label}, {"userns", c.pinUserNS}, {"network.start", c.startNetwork}, {"spec", c.buildSpec},
		{"files.prepare", c.prepareFiles}, {"network.await", c.awaitNetwork}, {"files.write", c.writeFiles}, {"record", c.record}}
	if !c.sb.InfraLess {
		steps = append(steps, step{"infra", c.startInfra})
	}
	if s.opts.NRI != nil {
		steps = append(steps, step{"nri", c.notifyNRI})
	}
	defer func() {
		if c.unblockNRI != nil {
			c.unblockNRI()
		}
	}()
	for _, st := range steps {
		sctx, span := tracing.Start(ctx, "sandbox.run."+st.name, attribute.String("pod.sandbox.id", id))
		err := st.do(sctx)
		tracing.End(span, err)
		if err != nil {
			return "", err
		}
	}
	if c.sb.InfraLess {
		if err := c.sb.status.Set(Status{State: StateReady}); err != nil {
			return "", err
		}
	}
	return s.finishRun(c.sb, c.log)
}

// rollback undoes the steps taken. When that fails, the sandbox is kept NOTREADY so
// StopPodSandbox/RemovePodSandbox finish the job; otherwise its name is free again.
func (c *creation) rollback(err error) error {
	if uerr := c.undo.Run("podSandboxID", c.sb.ID); uerr != nil {
		c.sb.status.Set(Status{State: StateNotReady})
		c.s.store.Put(c.sb.ID, c.sb)
		return fmt.Errorf("%w (cleanup incomplete, sandbox %s kept NOTREADY: %v)", err, c.sb.ID, uerr)
	}
	c.s.names.Release(c.sb.Name, c.sb.ID)
	return err
}

// label reserves the pod's SELinux labels (none where SELinux is off).
func (c *creation) label(context.Context) error {
	l, err := c.s.opts.SELinux.Pod(c.sb.Config.GetLinux().GetSecurityContext().GetSelinuxOptions())
	if err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	c.sb.SELinux = l
	c.undo.Push("release SELinux labels", func(context.Context) error { c.s.opts.SELinux.Release(l); return nil })
	return nil
}

// pinUserNS makes a pod's own user namespace and, owned by it, its network
// namespace (and an infra-less pod's IPC and UTS namespaces), all pinned under the
// pod's state dir. Pods in the node's user namespace skip it.
func (c *creation) pinUserNS(context.Context) error {
	sb := c.sb
	u := sb.UserNS()
	if u == nil {
		return nil
	}
	paths := map[int]string{unix.CLONE_NEWUSER: sb.UserNSPath, unix.CLONE_NEWNET: sb.NetNSPath}
	if sb.InfraLess {
		sb.IPCNSPath, sb.UTSNSPath = c.s.pinPath(sb.ID, "ipc"), c.s.pinPath(sb.ID, "uts")
		paths[unix.CLONE_NEWIPC], paths[unix.CLONE_NEWUTS] = sb.IPCNSPath, sb.UTSNSPath
	}
	c.undo.Push("remove the pod's namespaces", func(context.Context) error {
		var errs []error
		for _, p := range paths {
			errs = append(errs, netns.Remove(p))
		}
		return errors.Join(errs...)
	})
	if err := netns.PinInUserNS(paths, u.UID, u.GID); err != nil {
		return fmt.Errorf("creating the pod's user namespace: %w", err)
	}
	return failpoint.Hit("sandbox/run/userns")
}

// startNetwork creates the netns and runs CNI ADD in the background; awaitNetwork
// collects the result. Its undo waits for the setup to finish before undoing it.
func (c *creation) startNetwork(ctx context.Context) error {
	sb := c.sb
	c.undo.Push("remove pod network", func(ctx context.Context) error {
		c.awaitNetwork(ctx) // the setup must be over before it is undone
		if sb.HostNetwork() {
			return nil
		}
		if err := c.s.network.Detach(ctx, c.s.cniPod(sb)); err != nil {
			return err
		}
		return netns.Remove(sb.NetNSPath)
	})
	if sb.HostNetwork() {
		c.net <- netResult{}
		return nil
	}
	go func() {
		if sb.UserNSPath == "" { // else pinUserNS made it
			if err := netns.Create(sb.NetNSPath); err != nil {
				c.net <- netResult{err: fmt.Errorf("creating network namespace: %w", err)}
				return
			}
		}
		if err := failpoint.Hit("sandbox/run/netns"); err != nil {
			c.net <- netResult{err: err}
			return
		}
		res, err := c.s.network.Attach(ctx, c.s.cniPod(sb))
		if err == nil {
			err = failpoint.Hit("sandbox/run/cni")
		}
		c.net <- netResult{res, err}
	}()
	return nil
}

// awaitNetwork waits for the network setup and records the pod's IPs.
func (c *creation) awaitNetwork(context.Context) error {
	r := <-c.net
	c.net <- r // others may wait too
	if r.err != nil {
		return r.err
	}
	if r.res != nil {
		c.sb.IPs, c.sb.CNIResult = r.res.IPs, r.res.Raw
	}
	return nil
}

// buildSpec makes the infra container's spec (a record-only spec without a pause
// process), after making sure the pause image is there.
func (c *creation) buildSpec(ctx context.Context) error {
	sb := c.sb
	if sb.InfraLess {
		c.spec = oci.InfraLessSandboxSpec(sb.ID, sb.Config, c.s.opts.Host.CgroupDriver)
		return nil
	}
	img, err := c.s.images.EnsureSandboxImage(ctx)
	if err != nil {
		return err
	}
	if err := failpoint.Hit("sandbox/run/image"); err != nil {
		return err
	}
	c.image, sb.Image = img, img.ID
	c.spec, err = oci.SandboxSpec(namespaces.WithNamespace(ctx, c.s.conn.Namespace), oci.SandboxInput{
		ID: sb.ID, Config: sb.Config, Image: img.Spec.Config, NetNSPath: sb.NetNSPath, OwnOOM: c.s.ownOOM,
		CgroupDriver: c.s.opts.Host.CgroupDriver, UserNS: sb.UserNS(), SELinux: sb.SELinux,
	})
	if err == nil && c.handler.OCIVersion != "" {
		c.spec.Version = c.handler.OCIVersion
	}
	return err
}

// prepareFiles mounts the pod's /dev/shm and pins an infra-less pod's IPC and UTS
// namespaces.
func (c *creation) prepareFiles(context.Context) error {
	sb := c.sb
	c.undo.Push("remove sandbox files", func(context.Context) error {
		if err := c.s.unpin(sb); err != nil {
			return err
		}
		return errors.Join(os.RemoveAll(c.s.stateDir(sb.ID)), os.RemoveAll(sb.Dir))
	})
	if sb.ShmPath != "" {
		if err := mountShm(sb.ShmPath, sb.UserNS()); err != nil {
			return err
		}
	}
	if err := failpoint.Hit("sandbox/run/shm"); err != nil {
		return err
	}
	if !sb.InfraLess {
		return nil
	}
	if err := c.s.pinNamespaces(sb); err != nil {
		return err
	}
	return failpoint.Hit("sandbox/run/namespaces")
}

// writeFiles applies an infra-less pod's network sysctls (runc applies a pause
// container's) and writes hostname, hosts and resolv.conf.
func (c *creation) writeFiles(context.Context) error {
	sb := c.sb
	if sb.InfraLess && sb.NetNSPath != "" {
		if err := applySysctls(sb.NetNSPath, unix.CLONE_NEWNET, sb.Config.GetLinux().GetSysctls(), "net"); err != nil {
			return err
		}
	}
	if err := writeFiles(sb.Dir, sb.Config, sb.HostNetwork(), sb.IPs, sb.UserNS()); err != nil {
		return fmt.Errorf("writing sandbox files: %w", err)
	}
	// The pod's containers share its files and /dev/shm.
	for _, p := range []string{sb.Dir, sb.ShmPath} {
		if p != "" {
			if err := c.s.opts.SELinux.Relabel(p, sb.SELinux, true); err != nil {
				return err
			}
		}
	}
	return failpoint.Hit("sandbox/run/files")
}

// record creates the durable record: the containerd container holding the
// metadata (with a snapshot of the pause image when the pod has a pause process).
func (c *creation) record(ctx context.Context) error {
	sb := c.sb
	if err := sb.Metadata.encode(); err != nil {
		return err
	}
	sb.spec, _ = json.Marshal(c.spec)
	md := sb.Config.GetMetadata()
	opts := []containerd.NewContainerOpts{
		containerd.WithRuntime(c.handler.RuntimeType, c.s.runtimeOptions(c.handler)),
		containerd.WithSpec(c.spec),
		containerd.WithContainerLabels(map[string]string{
			LabelKind: KindSandbox, labelPodName: md.Name, labelPodNS: md.Namespace, labelPodUID: md.Uid,
		}),
		containerd.WithContainerExtension(ExtensionKey, &sb.Metadata),
	}
	if !sb.InfraLess {
		image := containerd.NewImageWithPlatform(c.s.client, images.Image{Name: c.image.ID, Target: c.image.Target}, platforms.Default())
		opts = append([]containerd.NewContainerOpts{
			containerd.WithSnapshotter(c.s.opts.Snapshotter), containerd.WithNewSnapshot(sb.ID, image, oci.SnapshotOpts(sb.UserNS())...),
		}, opts...)
	}
	container, err := c.s.client.NewContainer(ctx, sb.ID, opts...)
	if err != nil {
		return fmt.Errorf("recording the sandbox: %w", err)
	}
	c.container = container
	c.undo.Push("delete sandbox record", func(ctx context.Context) error {
		err := container.Delete(ctx, containerd.WithSnapshotCleanup)
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
	return failpoint.Hit("sandbox/run/container")
}

// startInfra creates and starts the pause process.
func (c *creation) startInfra(ctx context.Context) error {
	sb := c.sb
	task, err := c.container.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("creating infra task: %w", err)
	}
	c.undo.Push("delete infra task", func(ctx context.Context) error {
		_, err := task.Delete(ctx, containerd.WithProcessKill)
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err := failpoint.Hit("sandbox/run/task"); err != nil {
		return err
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("starting infra task: %w", err)
	}
	if err := failpoint.Hit("sandbox/run/started"); err != nil {
		return err
	}
	return sb.status.Set(Status{State: StateReady, Pid: task.Pid()})
}

// notifyNRI tells NRI plugins the pod runs; a plugin failing it fails the pod. If
// the pod fails from here on, plugins are told it is removed: those that saw it
// drop what they keep for it (the others ignore a pod they do not know).
func (c *creation) notifyNRI(ctx context.Context) error {
	c.unblockNRI = c.s.opts.NRI.BlockSync()
	pod := c.sb.NRIPod()
	c.undo.Push("tell NRI plugins the pod is gone", func(ctx context.Context) error {
		c.s.opts.NRI.RemovePodSandbox(ctx, pod)
		return nil
	})
	return c.s.opts.NRI.RunPodSandbox(ctx, pod)
}
