package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/store"
	"github.com/keelson/keelson/pkg/undo"
)

// Load rebuilds the container index after a (re)start. It assumes:
//   - every container has a containerd container labelled io.keelson.kind=container,
//     whose extension holds its metadata;
//   - the status file may be missing or stale: the task is the truth about whether it
//     runs, and an exit that happened while keelson was down is read from the task
//     (whose shim keeps the exit status until the task is deleted);
//   - a record that cannot be decoded is kept as UNKNOWN so it can still be removed.
//
// Load runs after the sandboxes are loaded.
func (s *Service) Load(ctx context.Context) error {
	list, err := s.client.Containers(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindContainer))
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	for _, cc := range list {
		c := s.load(ctx, cc)
		s.remember(c)
		if c.Name != "" {
			if err := s.names.Reserve(c.Name, c.ID); err != nil {
				klog.ErrorS(err, "Two containers share a name", "containerID", c.ID)
			}
		}
	}
	s.sweepImageVolumes(ctx)
	s.sweepRestoreDirs()
	s.sweepCheckpointWork()
	// State dirs of containers that do not exist: a crash between Create's steps.
	entries, _ := os.ReadDir(filepath.Join(s.opts.StateDir, "containers"))
	for _, e := range entries {
		if _, ok := s.store.Get(e.Name()); !ok {
			_ = os.RemoveAll(filepath.Join(s.opts.StateDir, "containers", e.Name()))
		}
	}
	klog.InfoS("Loaded containers", "count", s.store.Len())
	return nil
}

func (s *Service) load(ctx context.Context, cc containerd.Container) *Container {
	id := cc.ID()
	c := &Container{exited: make(chan struct{})}
	c.ID = id
	unknown := func(reason string) *Container {
		klog.ErrorS(errors.New(reason), "Container kept in UNKNOWN state", "containerID", id)
		c.status = store.NewStatus(s.statusPath(id), Status{State: StateUnknown, Reason: ReasonUnknown, Message: reason})
		return c
	}
	md, spec, err := runtime.ReadRecord[Metadata](ctx, cc, ExtensionKey)
	if err != nil {
		return unknown(err.Error())
	}
	if err := md.decode(); err != nil {
		return unknown(fmt.Sprintf("decoding container config: %v", err))
	}
	c.Metadata = *md
	c.spec = spec
	st := Status{State: StateCreated}
	if b, err := os.ReadFile(s.statusPath(id)); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			klog.ErrorS(err, "Status file unreadable; asking the task", "containerID", id)
		}
	}
	c.status = store.NewStatus(s.statusPath(id), st)
	// exit records an exit that happened while keelson was away.
	exit := func(code uint32, at time.Time, message string) {
		s.recordExit(c, int32(code), at, message)
	}
	task, err := cc.Task(ctx, nil)
	switch {
	case err == nil:
		ts, serr := task.Status(ctx)
		switch {
		case serr != nil:
			st.State, st.Reason, st.Message = StateUnknown, ReasonUnknown, fmt.Sprintf("task status: %v", serr)
		case ts.Status == containerd.Running || ts.Status == containerd.Paused || ts.Status == containerd.Pausing:
			st.State, st.Pid = StateRunning, task.Pid()
			if st.StartedAt == 0 {
				st.StartedAt = time.Now().UnixNano()
			}
			if c.Config.GetTty() || c.Config.GetStdin() {
				// keelson held this container's stdio: open its FIFOs again, so
				// its output reaches the log and attach works.
				s.reattach(ctx, c, cc)
			}
		case ts.Status == containerd.Stopped:
			// Exited while keelson was down: the shim still holds the real status.
			exit(ts.ExitStatus, ts.ExitTime, "")
			st = c.Status()
			if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
				klog.ErrorS(err, "Deleting exited task", "containerID", id)
			}
		case ts.Status == containerd.Created:
			// Crashed inside Start: the task exists but never ran.
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
			st.State, st.ExitCode, st.Reason, st.Message = StateExited, 128, ReasonStartError, "keelson restarted while the container was starting"
			st.FinishedAt = time.Now().UnixNano()
		}
	case errdefs.IsNotFound(err):
		if e, ok := runtime.ReadShimExit(s.exitPath(id)); ok && st.State == StateRunning {
			// containerd restarted and dropped the exited task; the supervisor
			// read its exit from the shim first.
			exit(e.Status, e.ExitedAt, "")
			st = c.Status()
		} else if st.State == StateRunning {
			// The task is gone and its exit status with it.
			st.State, st.ExitCode, st.Reason = StateExited, 255, ReasonUnknown
			st.Message = "the container's task disappeared while keelson was down"
			st.FinishedAt = time.Now().UnixNano()
		}
	default:
		st.State, st.Reason, st.Message = StateUnknown, ReasonUnknown, fmt.Sprintf("loading task: %v", err)
	}
	if st.State == StateExited {
		closeOnce(c.exited)
	}
	if err := c.status.Set(st); err != nil {
		klog.ErrorS(err, "Writing status file", "containerID", id)
	} else if st.State == StateExited {
		runtime.RemoveShimExit(s.exitPath(id))
	}
	return c
}

// Watch follows task exits and OOM kills until ctx ends. While the stream is broken
// it waits on the shims directly; after a reconnect it re-checks running containers.
func (s *Service) Watch(ctx context.Context) {
	go s.conn.Subscribe(ctx, runtime.Subscription{Filters: []string{`topic=="/tasks/exit"`, `topic=="/tasks/oom"`}, Handle: func(ev any, env *events.Envelope) {
		switch e := ev.(type) {
		case *eventstypes.TaskOOM:
			if c, ok := s.store.Get(e.ContainerID); ok {
				klog.V(2).InfoS("OOM kill in container", "containerID", c.ID)
				c.oom.Store(true)
			}
		case *eventstypes.TaskExit:
			if e.ID != e.ContainerID {
				return // an exec process
			}
			c, ok := s.store.Get(e.ContainerID)
			if !ok {
				return
			}
			at := time.Now()
			if e.ExitedAt != nil {
				at = e.ExitedAt.AsTime()
			}
			if e.ExitStatus == 128+uint32(syscall.SIGKILL) && !s.oomKilled(c) {
				// The shim's OOM event may trail its exit event: wait a little for it.
				go func() {
					s.awaitOOM(c, oomEventWait)
					s.recordExit(c, int32(e.ExitStatus), at, "")
					s.cleanupExited(c)
				}()
				return
			}
			s.recordExit(c, int32(e.ExitStatus), at, "")
			go s.cleanupExited(c)
		}
	}, Broken: s.watchShims, Resync: func() {
		s.recheck(ctx)
		s.stopWatchingShims()
	}})
}

// oomEventWait bounds how long a SIGKILLed container's exit waits for an OOM event
// when its cgroup can no longer tell (systemd removes an empty scope at once).
const oomEventWait = time.Second

// oomKilled tells whether the OOM killer killed in c's cgroup, from the event or
// from the cgroup's own count (which the kernel updates before the process dies,
// while the shim's event can arrive after its exit event) — or, once that cgroup is
// gone, from its parent's count having grown since the run started; it marks c if so.
func (s *Service) oomKilled(c *Container) bool {
	if c.oom.Load() {
		return true
	}
	path := oci.SpecCgroupsPath(c.Spec())
	if n, ok := cgroups.OOMKills(path); ok {
		if n > 0 {
			c.oom.Store(true)
		}
	} else if n, ok := cgroups.ParentOOMKills(path); ok && c.oomBase.Load() > 0 && int64(n)+1 > c.oomBase.Load() {
		c.oom.Store(true)
	}
	return c.oom.Load()
}

// awaitOOM waits up to d for c to be known OOM-killed.
func (s *Service) awaitOOM(c *Container, d time.Duration) {
	deadline := time.Now().Add(d)
	for !s.oomKilled(c) && time.Now().Before(deadline) {
		time.Sleep(25 * time.Millisecond)
	}
}

// cleanupExited deletes an exited container's task (so its shim goes away) outside
// the event loop; it waits for any Stop or Remove in progress.
func (s *Service) cleanupExited(c *Container) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), undo.Timeout)
	defer cancel()
	cc, err := s.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return
	}
	if task, err := cc.Task(ctx, nil); err == nil {
		s.deleteTask(ctx, c, task)
	} else if c.io != nil {
		c.io.close()
		c.io = nil
	}
}

// recheck records exits missed while the event stream was down.
func (s *Service) recheck(ctx context.Context) {
	for _, c := range s.store.List() {
		if c.Status().State != StateRunning {
			continue
		}
		cc, err := s.client.LoadContainer(ctx, c.ID)
		if err != nil {
			continue
		}
		task, err := cc.Task(ctx, nil)
		if errdefs.IsNotFound(err) {
			if e, ok := runtime.ReadShimExit(s.exitPath(c.ID)); ok {
				s.recordExit(c, int32(e.Status), e.ExitedAt, "")
				runtime.RemoveShimExit(s.exitPath(c.ID))
			} else {
				s.recordExit(c, 255, time.Now(), "the task disappeared")
			}
			continue
		}
		if err != nil {
			continue
		}
		if ts, err := task.Status(ctx); err == nil && ts.Status == containerd.Stopped {
			s.recordExit(c, int32(ts.ExitStatus), ts.ExitTime, "")
			go s.cleanupExited(c)
		}
	}
}

// ShimExitPath is where the supervisor records the exit of a keelson container's
// task that exited while containerd was down: in the container's state dir, so it
// goes with the container. Tasks that are not keelson containers (sandboxes) get "".
func ShimExitPath(stateDir, id string) string {
	s := &Service{opts: Options{StateDir: stateDir}}
	if _, err := os.Stat(s.stateDir(id)); err != nil {
		return ""
	}
	return s.exitPath(id)
}

// reattach connects a new keelson-held stdio to a running container's FIFOs.
func (s *Service) reattach(ctx context.Context, c *Container, cc containerd.Container) {
	x, opts, err := s.heldIO(c)
	if err != nil {
		klog.ErrorS(err, "Reattaching container stdio", "containerID", c.ID)
		return
	}
	if _, err := cc.Task(ctx, cio.NewAttach(opts...)); err != nil {
		x.close()
		klog.ErrorS(err, "Reattaching container stdio", "containerID", c.ID)
		return
	}
	c.io = x
}
