package runtime

import (
	"context"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"
)

// RemoveLeftovers removes, in keelson's namespace, what creations cut short by a
// kill -9 leave in containerd: every lease (the client holds one for the length of
// a call; none outlives the keelson that took it) and every active snapshot or view
// that no container's record uses (an image volume's view counts as its
// container's). Call it at start, before serving, while nothing is being created.
func (c *Conn) RemoveLeftovers(ctx context.Context, snapshotter string) {
	ctx = namespaces.WithNamespace(ctx, c.Namespace)
	ls := c.Client.LeasesService()
	if list, err := ls.List(ctx); err == nil {
		for _, l := range list {
			klog.InfoS("Removing a lease an earlier keelson left", "lease", l.ID, "created", l.CreatedAt)
			if err := ls.Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
				klog.ErrorS(err, "Removing a left-over lease", "lease", l.ID)
			}
		}
	}
	containers, err := c.Client.Containers(ctx)
	if err != nil {
		klog.ErrorS(err, "Listing containers to find left-over snapshots")
		return
	}
	used := map[string]bool{}
	for _, cc := range containers {
		used[cc.ID()] = true
		if info, err := cc.Info(ctx); err == nil && info.SnapshotKey != "" {
			used[info.SnapshotKey] = true
		}
	}
	sn := c.Client.SnapshotService(snapshotter)
	var stale []string
	_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if owner := info.Labels[LabelImageVolumeOf]; owner != "" {
			return nil // image volume views: their own sweep, which unmounts them first
		}
		if info.Kind != snapshots.KindCommitted && !used[info.Name] {
			stale = append(stale, info.Name)
		}
		return nil
	})
	for _, key := range stale {
		klog.InfoS("Removing a snapshot no container uses", "snapshot", key)
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			klog.ErrorS(err, "Removing a left-over snapshot", "snapshot", key)
		}
	}
}
