package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/safefile"
)

// imageFiles reads small files (/etc/passwd, /etc/group) from images' root
// filesystems for user resolution. Each image is mounted once, read-only, through a
// temporary view; its answers are kept by image ID, since an image never changes.
type imageFiles struct {
	client      *containerd.Client
	snapshotter string

	mu    sync.Mutex
	cache map[string]map[string][]byte // image ID → path → content (nil = absent)
}

// cachedImagePaths are read together on the first request for an image.
var cachedImagePaths = []string{"/etc/passwd", "/etc/group"}

func newImageFiles(client *containerd.Client, snapshotter string) *imageFiles {
	return &imageFiles{client: client, snapshotter: snapshotter, cache: map[string]map[string][]byte{}}
}

func (f *imageFiles) read(ctx context.Context, img *keelsonimages.Image, path string) ([]byte, error) {
	f.mu.Lock()
	files, ok := f.cache[img.ID]
	f.mu.Unlock()
	if !ok {
		var err error
		if files, err = f.load(ctx, img); err != nil {
			return nil, err
		}
		f.mu.Lock()
		f.cache[img.ID] = files
		f.mu.Unlock()
	}
	b, ok := files[path]
	if !ok {
		return nil, fmt.Errorf("%s is not read from images: %w", path, errdefs.ErrNotImplemented)
	}
	if b == nil {
		return nil, os.ErrNotExist
	}
	return b, nil
}

// load mounts a view of the image under a short lease and reads the files.
func (f *imageFiles) load(ctx context.Context, img *keelsonimages.Image) (map[string][]byte, error) {
	ctx, done, err := f.client.WithLease(ctx, leases.WithRandomID(), leases.WithExpiration(5*time.Minute))
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))
	sn := f.client.SnapshotService(f.snapshotter)
	key := fmt.Sprintf("keelson-view-%d", time.Now().UnixNano())
	mounts, err := sn.View(ctx, key, img.ChainID)
	if err != nil {
		return nil, fmt.Errorf("viewing image %s: %w", img.ID, err)
	}
	defer sn.Remove(context.WithoutCancel(ctx), key)
	out := map[string][]byte{}
	err = mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
		for _, p := range cachedImagePaths {
			// The image is untrusted: its links resolve inside its root, and only a
			// regular file of bounded size is read (never a device node or a FIFO).
			b, err := safefile.ReadInRoot(ctx, root, p, safefile.MaxRead)
			if errors.Is(err, os.ErrNotExist) {
				out[p] = nil
				continue
			}
			if err != nil {
				return err
			}
			out[p] = b
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading users and groups of image %s: %w", img.ID, err)
	}
	return out, nil
}
