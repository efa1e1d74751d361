package container

import (
	"context"
	"sync"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/runtime"
)

// While containerd is down nobody hears a container exit: the shim cannot publish
// it, and a containerd that comes back drops the exited task with its status. So
// while the event stream is broken keelson waits on each running container's shim
// itself, and stops when the stream is back (events and recheck take over).
type shimWatch struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	exited []*Container // heard while containerd was away; their tasks go once it is back
}

// watchShims starts waiting on the shims of running containers (once per outage).
func (s *Service) watchShims() {
	s.shims.mu.Lock()
	defer s.shims.mu.Unlock()
	if s.shims.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.shims.cancel = cancel
	n := 0
	for _, c := range s.store.List() {
		st := c.Status()
		if st.State != StateRunning || st.Pid == 0 {
			continue
		}
		bundle, err := runtime.ShimBundle(int(st.Pid), c.ID)
		if err != nil {
			klog.V(2).InfoS("Cannot find a running container's shim", "containerID", c.ID, "err", err)
			continue
		}
		n++
		go func() {
			e, err := runtime.WaitShim(ctx, bundle, c.ID)
			if err != nil {
				if ctx.Err() == nil {
					klog.V(2).InfoS("Waiting on a shim failed", "containerID", c.ID, "err", err)
				}
				return
			}
			klog.InfoS("Container exited while containerd was down", "containerID", c.ID, "exitStatus", e.Status)
			s.recordExit(c, int32(e.Status), e.ExitedAt, "")
			s.shims.mu.Lock()
			s.shims.exited = append(s.shims.exited, c)
			s.shims.mu.Unlock()
		}()
	}
	klog.V(2).InfoS("Waiting on shims while containerd is away", "containers", n)
}

// stopWatchingShims ends the waits started by watchShims (containerd is back) and
// deletes the tasks of the containers they saw exit.
func (s *Service) stopWatchingShims() {
	s.shims.mu.Lock()
	defer s.shims.mu.Unlock()
	if s.shims.cancel != nil {
		s.shims.cancel()
		s.shims.cancel = nil
	}
	for _, c := range s.shims.exited {
		go s.cleanupExited(c)
	}
	s.shims.exited = nil
}
