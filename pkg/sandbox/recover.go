package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/mounts"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/store"
)

// Load rebuilds the sandbox index after a (re)start. It assumes:
//   - every sandbox has a containerd container labelled io.keelson.kind=sandbox, whose
//     extension holds its metadata (written once, at creation);
//   - the status file may be missing (reboot, crash before it was written): the task
//     then tells whether the infra process runs;
//   - a record that cannot be decoded is kept as UNKNOWN, never dropped, so kubelet
//     can still stop and remove it;
//   - anything a crashed RunPodSandbox made before the containerd record existed
//     (netns, CNI attachment, files) belongs to no record and is garbage collected.
func (s *Service) Load(ctx context.Context) error {
	list, err := s.client.Containers(ctx, fmt.Sprintf("labels.%q==%s", LabelKind, KindSandbox))
	if err != nil {
		return fmt.Errorf("listing sandboxes: %w", err)
	}
	for _, c := range list {
		sb := s.load(ctx, c)
		s.opts.SELinux.Reserve(sb.SELinux) // no new pod may get its MCS level
		s.store.Put(sb.ID, sb)
		if sb.Name != "" {
			if err := s.names.Reserve(sb.Name, sb.ID); err != nil {
				klog.ErrorS(err, "Two sandboxes share a name", "podSandboxID", sb.ID)
			}
		}
	}
	s.gc(ctx)
	klog.InfoS("Loaded pod sandboxes", "count", s.store.Len())
	return nil
}

func (s *Service) load(ctx context.Context, c containerd.Container) *Sandbox {
	id := c.ID()
	unknown := func(reason string) *Sandbox {
		klog.ErrorS(errors.New(reason), "Sandbox kept in UNKNOWN state", "podSandboxID", id)
		sb := &Sandbox{Metadata: Metadata{ID: id, Dir: s.filesDir(id), NetNSPath: s.netnsPath(id)}}
		sb.status = store.NewStatus(s.statusPath(id), Status{State: StateUnknown, Reason: reason})
		return sb
	}
	md, spec, err := runtime.ReadRecord[Metadata](ctx, c, ExtensionKey)
	if err != nil {
		return unknown(err.Error())
	}
	if err := md.decode(); err != nil {
		return unknown(fmt.Sprintf("decoding sandbox config: %v", err))
	}
	sb := &Sandbox{Metadata: *md, spec: spec}
	st := Status{State: StateNotReady}
	if b, err := os.ReadFile(s.statusPath(id)); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			klog.ErrorS(err, "Status file unreadable; asking the task", "podSandboxID", id)
			st = Status{State: StateNotReady}
		}
	}
	// The task is the truth about whether the infra process runs; without one, the
	// pinned namespaces are (a reboot removes them).
	running := false
	if sb.InfraLess {
		running = true
		for _, p := range []string{sb.NetNSPath, sb.IPCNSPath, sb.UTSNSPath, sb.UserNSPath} {
			if p != "" && !netns.IsMounted(p) {
				running = false
			}
		}
	} else if task, err := c.Task(ctx, nil); err == nil {
		if ts, err := task.Status(ctx); err == nil && ts.Status == containerd.Running {
			running = true
			st.Pid = task.Pid()
		}
	}
	switch {
	case running && st.State == StateNotReady && !st.NetworkDown && st.ExitedAt.IsZero():
		// Crashed between starting the task and writing the status: it runs.
		st.State = StateReady
	case !running && st.State == StateReady:
		st.State = StateNotReady
		st.ExitedAt = time.Now()
	}
	if st.State == StateUnknown {
		st.State = StateNotReady
	}
	sb.status = store.NewStatus(s.statusPath(id), st)
	if err := sb.status.Save(); err != nil {
		klog.ErrorS(err, "Writing status file", "podSandboxID", id)
	}
	return sb
}

// gc removes network namespaces, CNI attachments and sandbox dirs that belong to no
// known sandbox: leftovers of a RunPodSandbox that died before its record existed.
func (s *Service) gc(ctx context.Context) {
	known := map[string]bool{}
	for _, sb := range s.store.List() {
		known[sb.ID] = true
	}
	// CNI first: DEL needs the netns still there. An ADD cut short by a crash left
	// only its pending record; the rest were cached by libcni.
	for _, err := range s.network.Recover(ctx, known) {
		klog.ErrorS(err, "Releasing the network of an unfinished sandbox failed (keelson doctor reports what is left)")
	}
	s.network.GC(ctx, known)
	for _, dir := range []string{filepath.Join(s.opts.StateDir, "netns"), filepath.Join(s.opts.StateDir, "sandboxes"), filepath.Join(s.opts.RootDir, "sandboxes")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if known[e.Name()] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			klog.InfoS("Removing leftover of an unfinished sandbox", "path", p)
			if e.IsDir() {
				mounts.UnmountUnder(p)
				_ = os.RemoveAll(p)
			} else {
				_ = netns.Remove(p)
			}
		}
	}
}

// Watch follows infra task exits until ctx ends; after a reconnect it re-checks tasks.
func (s *Service) Watch(ctx context.Context) {
	go s.conn.Subscribe(ctx, runtime.Subscription{Filters: []string{`topic=="/tasks/exit"`}, Handle: func(ev any, env *events.Envelope) {
		e, ok := ev.(*eventstypes.TaskExit)
		if !ok || e.ID != e.ContainerID {
			return // not an init process
		}
		at := time.Now()
		if e.ExitedAt != nil {
			at = e.ExitedAt.AsTime()
		}
		s.onExit(e.ContainerID, at)
	}, Resync: func() { s.recheck(ctx) }})
}

// recheck marks READY sandboxes whose task is gone as NOTREADY (exits missed while
// the event stream was down).
func (s *Service) recheck(ctx context.Context) {
	for _, sb := range s.store.List() {
		if sb.Status().State != StateReady || sb.InfraLess {
			continue
		}
		c, err := s.client.LoadContainer(ctx, sb.ID)
		if err != nil {
			continue
		}
		task, err := c.Task(ctx, nil)
		if errdefs.IsNotFound(err) {
			s.onExit(sb.ID, time.Now())
			continue
		}
		if err == nil {
			if st, err := task.Status(ctx); err == nil && st.Status == containerd.Stopped {
				s.onExit(sb.ID, st.ExitTime)
			}
		}
	}
}
