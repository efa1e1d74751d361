package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/image-spec/identity"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/undo"
)

// Image volumes (KEP-4639): a CRI mount naming an image gets a read-only view of
// that image's unpacked snapshot, mounted on the host under
// <state_dir>/image-volumes/<container id>-<n> and bind-mounted into the container.
// The view carries labelImageVolumeOf (and a GC root label, so containerd keeps it);
// the mount point and the view are named from the container's ID, so removal — or
// the sweep at start, for a container that never came to be — finds them.
const labelImageVolumeOf = runtime.LabelImageVolumeOf

func (s *Service) imageVolumeDir(id string, n int) string {
	return runtime.ImageVolumeDir(s.opts.StateDir, imageVolumeKey(id, n))
}

func imageVolumeKey(id string, n int) string { return "keelson-imgvol-" + id + "-" + strconv.Itoa(n) }

// mountImageVolumes mounts the image volumes of cfg and returns the config the spec
// is built from: each image mount turned into a read-only bind mount of its
// (sub)directory. Undo steps unmount and remove what was made.
func (s *Service) mountImageVolumes(ctx context.Context, id string, cfg *runtimeapi.ContainerConfig, steps *undo.Stack) (*runtimeapi.ContainerConfig, error) {
	if !hasImageVolumes(cfg) {
		return cfg, nil
	}
	out := proto.Clone(cfg).(*runtimeapi.ContainerConfig)
	for n, m := range out.GetMounts() {
		ref := m.GetImage().GetImage()
		if ref == "" {
			continue
		}
		src, err := s.mountImageVolume(ctx, id, n, ref, m.GetImageSubPath(), steps)
		if err != nil {
			return nil, fmt.Errorf("image volume %q at %s: %w", ref, m.GetContainerPath(), err)
		}
		m.HostPath, m.Image, m.ImageSubPath, m.Readonly = src, nil, "", true
		// ContainerStatus reports which image the volume holds (kubelet shows it in
		// the pod's volume status).
		if img, err := s.images.Get(ref); err == nil {
			cfg.GetMounts()[n].Image.ImageRef = img.ID
		}
	}
	return out, nil
}

func (s *Service) mountImageVolume(ctx context.Context, id string, n int, ref, subPath string, steps *undo.Stack) (string, error) {
	img, err := s.images.Get(ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", fmt.Errorf("image not found: pull it before creating the container: %w", errdefs.ErrNotFound)
		}
		return "", err
	}
	nsCtx := namespaces.WithNamespace(ctx, s.conn.Namespace)
	image := containerd.NewImageWithPlatform(s.client, images.Image{Name: img.ID, Target: img.Target}, platforms.Default())
	if ok, err := image.IsUnpacked(nsCtx, s.opts.Snapshotter); err != nil || !ok {
		if err := image.Unpack(nsCtx, s.opts.Snapshotter); err != nil {
			return "", fmt.Errorf("unpacking: %w", err)
		}
	}
	diffIDs, err := image.RootFS(nsCtx)
	if err != nil {
		return "", err
	}
	sn := s.client.SnapshotService(s.opts.Snapshotter)
	key := imageVolumeKey(id, n)
	mounts, err := sn.View(nsCtx, key, identity.ChainID(diffIDs).String(), snapshots.WithLabels(map[string]string{
		labelImageVolumeOf:      id,
		"containerd.io/gc.root": time.Now().UTC().Format(time.RFC3339),
	}))
	if err != nil {
		return "", fmt.Errorf("making a view of its snapshot: %w", err)
	}
	dir := s.imageVolumeDir(id, n)
	steps.Push("remove image volume "+key, func(ctx context.Context) error { return s.unmountImageVolume(ctx, key, dir) })
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := mount.All(mounts, dir); err != nil {
		return "", fmt.Errorf("mounting its view: %w", err)
	}
	if subPath == "" {
		return dir, nil
	}
	src, err := securejoin.SecureJoin(dir, subPath)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("image_sub_path %q: %w", subPath, errors.Join(err, errdefs.ErrInvalidArgument))
	}
	return src, nil
}

// hasImageVolumes tells whether a container config mounts an image.
func hasImageVolumes(cfg *runtimeapi.ContainerConfig) bool {
	for _, m := range cfg.GetMounts() {
		if m.GetImage().GetImage() != "" {
			return true
		}
	}
	return false
}

// unmountImageVolume unmounts one image volume and removes its view; what is gone
// already is fine.
func (s *Service) unmountImageVolume(ctx context.Context, key, dir string) error {
	var errs []error
	if err := mount.UnmountAll(dir, 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	} else if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	nsCtx := namespaces.WithNamespace(ctx, s.conn.Namespace)
	if err := s.client.SnapshotService(s.opts.Snapshotter).Remove(nsCtx, key); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeImageVolumes removes every image volume of container id.
func (s *Service) removeImageVolumes(ctx context.Context, id string) error {
	var errs []error
	for _, v := range s.imageVolumes(ctx, func(owner string) bool { return owner == id }) {
		errs = append(errs, s.unmountImageVolume(ctx, v.key, v.dir))
	}
	return errors.Join(errs...)
}

// sweepImageVolumes removes the image volumes of containers that do not exist (a
// crash inside CreateContainer).
func (s *Service) sweepImageVolumes(ctx context.Context) {
	for _, v := range s.imageVolumes(ctx, func(owner string) bool { _, ok := s.store.Get(owner); return !ok }) {
		if err := s.unmountImageVolume(ctx, v.key, v.dir); err != nil {
			klog.ErrorS(err, "Removing a left-over image volume", "snapshot", v.key)
		}
	}
}

// ImageVolumeUsers lists the containers that mount image imageID as an image volume
// (RemoveImage refuses such an image; ImageStatus and ListImages report it pinned).
func (s *Service) ImageVolumeUsers(imageID string) []string { return s.volumeUsers.list(imageID) }

// imageVolumeIndex maps image IDs to the containers that mount them as image volumes,
// kept as containers are listed and forgotten: ListImages asks it for every image.
type imageVolumeIndex struct {
	mu    sync.Mutex
	users map[string]map[string]struct{} // image ID -> container IDs
}

func (x *imageVolumeIndex) add(c *Container) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range c.Config.GetMounts() {
		if ref := m.GetImage().GetImageRef(); ref != "" {
			if x.users == nil {
				x.users = map[string]map[string]struct{}{}
			}
			if x.users[ref] == nil {
				x.users[ref] = map[string]struct{}{}
			}
			x.users[ref][c.ID] = struct{}{}
		}
	}
}

func (x *imageVolumeIndex) remove(c *Container) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range c.Config.GetMounts() {
		if ref := m.GetImage().GetImageRef(); ref != "" {
			delete(x.users[ref], c.ID)
			if len(x.users[ref]) == 0 {
				delete(x.users, ref)
			}
		}
	}
}

func (x *imageVolumeIndex) list(imageID string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]string, 0, len(x.users[imageID]))
	for id := range x.users[imageID] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

type imageVolume struct{ key, dir string }

// imageVolumes lists the image volume views whose owner matches.
func (s *Service) imageVolumes(ctx context.Context, match func(owner string) bool) []imageVolume {
	var out []imageVolume
	nsCtx := namespaces.WithNamespace(ctx, s.conn.Namespace)
	err := s.client.SnapshotService(s.opts.Snapshotter).Walk(nsCtx, func(_ context.Context, info snapshots.Info) error {
		owner := info.Labels[labelImageVolumeOf]
		if owner == "" || !match(owner) {
			return nil
		}
		n, err := strconv.Atoi(info.Name[strings.LastIndex(info.Name, "-")+1:])
		if err != nil || info.Name != imageVolumeKey(owner, n) {
			return nil
		}
		out = append(out, imageVolume{key: info.Name, dir: s.imageVolumeDir(owner, n)})
		return nil
	}, fmt.Sprintf("labels.%q", labelImageVolumeOf))
	if err != nil {
		klog.ErrorS(err, "Listing image volumes")
	}
	return out
}
