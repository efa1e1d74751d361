package images

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"k8s.io/klog/v2"
)

// fsUsageInterval is how often snapshot usage is summed (kubelet asks every 10s).
const fsUsageInterval = 10 * time.Second

// FsUsage is the snapshotter's usage, as ImageFsInfo reports it.
type FsUsage struct {
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
	Timestamp  time.Time
}

type fsUsage struct {
	mu      sync.RWMutex
	last    FsUsage
	trigger chan struct{}
	once    sync.Once
}

func (f *fsUsage) init() { f.once.Do(func() { f.trigger = make(chan struct{}, 1) }) }

// FsUsage returns the last computed usage; it never waits on containerd.
func (s *Service) FsUsage() FsUsage {
	s.fs.mu.RLock()
	defer s.fs.mu.RUnlock()
	return s.fs.last
}

// triggerFsUsage asks for a refresh soon (after pulls and removals).
func (s *Service) triggerFsUsage() {
	s.fs.init()
	select {
	case s.fs.trigger <- struct{}{}:
	default:
	}
}

func (s *Service) runFsUsage(ctx context.Context) {
	s.fs.init()
	t := time.NewTicker(fsUsageInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.fs.trigger:
		}
		s.refreshFsUsage(ctx)
	}
}

// refreshFsUsage sums the usage of every snapshot and finds the snapshotter's root.
func (s *Service) refreshFsUsage(ctx context.Context) {
	mountpoint := s.FsUsage().Mountpoint
	if mountpoint == "" {
		mountpoint = s.snapshotterRoot(ctx)
	}
	sn := s.client.SnapshotService(s.opts.Snapshotter)
	var bytes, inodes int64
	err := sn.Walk(ctx, func(ctx context.Context, info snapshots.Info) error {
		u, err := sn.Usage(ctx, info.Name)
		if err != nil {
			return nil // removed meanwhile
		}
		bytes += u.Size
		inodes += u.Inodes
		return nil
	})
	if err != nil {
		klog.V(2).InfoS("Summing snapshot usage", "err", err)
		return
	}
	s.fs.mu.Lock()
	s.fs.last = FsUsage{Mountpoint: mountpoint, UsedBytes: uint64(bytes), InodesUsed: uint64(inodes), Timestamp: time.Now()}
	s.fs.mu.Unlock()
}

// snapshotterRoot asks containerd where the snapshotter keeps its data.
func (s *Service) snapshotterRoot(ctx context.Context) string {
	resp, err := s.client.IntrospectionService().Plugins(ctx, `type=="io.containerd.snapshotter.v1",id=="`+s.opts.Snapshotter+`"`)
	if err != nil || len(resp.Plugins) == 0 {
		klog.V(2).InfoS("Cannot find the snapshotter's root", "snapshotter", s.opts.Snapshotter, "err", err)
		return ""
	}
	return resp.Plugins[0].Exports["root"]
}
