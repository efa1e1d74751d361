// Package images is keelson's image service: pulls through containerd (hosts.toml
// registry config, credentials, a shared download limit, a progress timeout), an
// in-memory index that answers List and Status without touching containerd, removal,
// and image filesystem usage.
package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/runtime"
)

// Options configure the image service (config.Images plus the snapshotter).
type Options struct {
	Snapshotter            string
	RegistryConfigDir      string
	AuthFile               string
	PullProgressTimeout    time.Duration
	MaxConcurrentDownloads int
	// Transfer: containerd has the Transfer service (2.x); pulls go through it.
	Transfer     bool
	SandboxImage string
}

// PullOptions are the pull settings a reload may change.
type PullOptions struct {
	RegistryConfigDir   string
	AuthFile            string
	PullProgressTimeout time.Duration
}

// SetPullOptions changes the settings of the pulls that start from now on.
func (s *Service) SetPullOptions(o PullOptions) { s.pullOpts.Store(&o) }

// Service manages the images of keelson's containerd namespace.
type Service struct {
	conn       *runtime.Conn
	client     *containerd.Client
	opts       Options
	pullOpts   atomic.Pointer[PullOptions] // what SIGHUP may change
	sandboxRef atomic.Pointer[string]      // normalized sandbox image name, always pinned
	mounted    atomic.Pointer[func(imageID string) []string]
	platform   platforms.MatchComparer

	idx     *index
	limiter *semaphore.Weighted
	pulls   singleflight.Group
	// inProgress: the pulls running, by normalized reference (*progress).
	inProgress sync.Map
	fs         fsUsage

	// contentCache avoids re-reading configs for targets already seen.
	cacheMu      sync.Mutex
	contentCache map[digest.Digest]*imageContent
}

// New returns the service; Load fills its index.
func New(conn *runtime.Conn, opts Options) (*Service, error) {
	named, err := Normalize(opts.SandboxImage)
	if err != nil {
		return nil, fmt.Errorf("images.sandbox_image: %w", err)
	}
	s := &Service{
		conn:         conn,
		client:       conn.Client,
		opts:         opts,
		platform:     platforms.Default(),
		idx:          newIndex(),
		limiter:      semaphore.NewWeighted(int64(opts.MaxConcurrentDownloads)),
		contentCache: map[digest.Digest]*imageContent{},
	}
	ref := named.String()
	s.sandboxRef.Store(&ref)
	s.SetPullOptions(PullOptions{RegistryConfigDir: opts.RegistryConfigDir, AuthFile: opts.AuthFile, PullProgressTimeout: opts.PullProgressTimeout})
	return s, nil
}

// Load rebuilds the index from containerd's image records.
func (s *Service) Load(ctx context.Context) error {
	records, err := s.client.ImageService().List(ctx)
	if err != nil {
		return fmt.Errorf("listing images: %w", err)
	}
	names := make(map[string]*imageContent, len(records))
	for _, rec := range records {
		if IsCheckpointRecord(rec.Name) {
			// Left by a CheckpointContainer cut short (its blobs are held only by
			// the call's lease); a running call tolerates the record's loss.
			if err := s.client.ImageService().Delete(ctx, rec.Name); err != nil && !errdefs.IsNotFound(err) {
				klog.ErrorS(err, "Removing a left-over checkpoint record", "name", rec.Name)
			}
			continue
		}
		c, err := s.contentOf(ctx, rec)
		if err != nil {
			// Kept out of the index, not deleted: a later pull repairs it.
			klog.ErrorS(err, "Skipping image record that cannot be read", "name", rec.Name)
			continue
		}
		names[rec.Name] = c
	}
	s.idx.replaceAll(names)
	s.refreshFsUsage(ctx)
	klog.InfoS("Loaded images", "images", len(s.idx.list()), "records", len(records))
	return nil
}

// Run keeps the index current with containerd's image events and refreshes the
// filesystem usage periodically, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	go s.conn.Subscribe(ctx, runtime.Subscription{Filters: []string{`topic~="/images/"`}, Handle: func(ev any, env *events.Envelope) {
		switch e := ev.(type) {
		case *eventstypes.ImageCreate:
			s.refreshName(ctx, e.Name)
		case *eventstypes.ImageUpdate:
			s.refreshName(ctx, e.Name)
		case *eventstypes.ImageDelete:
			s.idx.remove(e.Name)
		}
	}, Resync: func() {
		if err := s.Load(ctx); err != nil {
			klog.ErrorS(err, "Resyncing images after containerd reconnect")
		}
	}})
	go s.runFsUsage(ctx)
}

// CheckpointRecordPrefix names the image records CheckpointContainer has containerd
// make while it runs (never images of the CRI).
const CheckpointRecordPrefix = "keelson-checkpoint-"

// IsCheckpointRecord tells a CheckpointContainer's temporary image record.
func IsCheckpointRecord(name string) bool { return strings.HasPrefix(name, CheckpointRecordPrefix) }

// refreshName re-reads one containerd image record into the index.
func (s *Service) refreshName(ctx context.Context, name string) {
	if IsCheckpointRecord(name) {
		return
	}
	rec, err := s.client.ImageService().Get(ctx, name)
	if errdefs.IsNotFound(err) {
		s.idx.remove(name)
		return
	}
	if err != nil {
		klog.ErrorS(err, "Reading image record", "name", name)
		return
	}
	c, err := s.contentOf(ctx, rec)
	if err != nil {
		klog.V(2).InfoS("Image record not readable yet", "name", name, "err", err)
		return
	}
	s.idx.set(name, c)
}

// contentOf reads what an image record's target stands for on this platform: config,
// chain ID and size. Results are cached by target digest.
func (s *Service) contentOf(ctx context.Context, rec images.Image) (*imageContent, error) {
	s.cacheMu.Lock()
	c, ok := s.contentCache[rec.Target.Digest]
	s.cacheMu.Unlock()
	if ok {
		return c, nil
	}
	store := s.client.ContentStore()
	configDesc, err := images.Config(ctx, store, rec.Target, s.platform)
	if err != nil {
		return nil, fmt.Errorf("image %s: config: %w", rec.Name, err)
	}
	blob, err := content.ReadBlob(ctx, store, configDesc)
	if err != nil {
		return nil, fmt.Errorf("image %s: reading config: %w", rec.Name, err)
	}
	var spec ocispec.Image
	if err := json.Unmarshal(blob, &spec); err != nil {
		return nil, fmt.Errorf("image %s: config is not an OCI image config: %w", rec.Name, err)
	}
	target := images.Image{Target: rec.Target}
	size, err := target.Size(ctx, store, s.platform)
	if err != nil {
		return nil, fmt.Errorf("image %s: size: %w", rec.Name, err)
	}
	c = &imageContent{
		ID:      configDesc.Digest.String(),
		Spec:    spec,
		ChainID: identity.ChainID(spec.RootFS.DiffIDs).String(),
		Size:    uint64(size),
		Target:  rec.Target,
	}
	s.cacheMu.Lock()
	s.contentCache[rec.Target.Digest] = c
	s.cacheMu.Unlock()
	return c, nil
}

// Get finds a local image by ID (full or unique prefix), tag or repo digest.
func (s *Service) Get(ref string) (*Image, error) {
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	if fullIDRE.MatchString(ref) {
		if img := s.idx.byID("sha256:" + strings.TrimPrefix(ref, "sha256:")); img != nil {
			return img, nil
		}
		return nil, fmt.Errorf("image %q not found: %w", ref, errdefs.ErrNotFound)
	}
	if named, err := Normalize(ref); err == nil {
		if img := s.idx.byName(named.String()); img != nil {
			return img, nil
		}
	} else if !idPrefixRE.MatchString(ref) {
		return nil, err
	}
	if idPrefixRE.MatchString(ref) {
		img, err := s.idx.byIDPrefix(strings.TrimPrefix(ref, "sha256:"))
		if err != nil {
			return nil, err
		}
		if img != nil {
			return img, nil
		}
	}
	return nil, fmt.Errorf("image %q not found: %w", ref, errdefs.ErrNotFound)
}

// List returns every image, sorted by ID.
func (s *Service) List() []*Image { return s.idx.list() }

// Pinned reports whether kubelet's image GC must leave img alone: the sandbox image,
// and images mounted as image volumes.
func (s *Service) Pinned(img *Image) bool {
	for _, t := range img.RepoTags {
		if t == s.SandboxImage() {
			return true
		}
	}
	return len(s.mountedBy(img.ID)) > 0
}

// SetMountedBy tells the service which containers mount an image (by ID) as an image
// volume: such an image is reported pinned and cannot be removed.
func (s *Service) SetMountedBy(f func(imageID string) []string) { s.mounted.Store(&f) }

func (s *Service) mountedBy(id string) []string {
	if f := s.mounted.Load(); f != nil {
		return (*f)(id)
	}
	return nil
}

// SandboxImage is the configured pause image's normalized name.
func (s *Service) SandboxImage() string { return *s.sandboxRef.Load() }

// SetSandboxImage changes the sandbox image (a reload): new pods with a pause
// process use it, and it is the one reported pinned.
func (s *Service) SetSandboxImage(ref string) error {
	named, err := Normalize(ref)
	if err != nil {
		return fmt.Errorf("images.sandbox_image: %w", err)
	}
	name := named.String()
	s.sandboxRef.Store(&name)
	return nil
}

// Remove deletes the image ref resolves to, under all its names (tags, digests, ID),
// as kubelet expects. Containers using it keep their snapshots and keep working.
// A missing image is not an error.
func (s *Service) Remove(ctx context.Context, ref string) error {
	img, err := s.Get(ref)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if users := s.mountedBy(img.ID); len(users) > 0 {
		return fmt.Errorf("image %s is mounted as an image volume by container(s) %s: remove them first: %w", img.ID, strings.Join(users, ", "), errdefs.ErrFailedPrecondition)
	}
	names := s.idx.namesOf(img.ID)
	if len(names) == 0 {
		return nil
	}
	is := s.client.ImageService()
	remove := func(name string, opts ...images.DeleteOpt) error {
		if err := is.Delete(ctx, name, opts...); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("removing image %s (%s): %w", name, img.ID, err)
		}
		s.idx.remove(name)
		return nil
	}
	// All names but the last at once (each is a round trip to containerd, which
	// containerd's CRI, inside containerd, does not pay); the last one waits for
	// garbage collection, so the space is free on return.
	last := names[len(names)-1]
	errs := make([]error, len(names)-1)
	var wg sync.WaitGroup
	for i, name := range names[:len(names)-1] {
		wg.Go(func() { errs[i] = remove(name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := remove(last, images.SynchronousDelete()); err != nil {
		return err
	}
	klog.V(2).InfoS("Removed image", "id", img.ID, "names", names)
	s.triggerFsUsage()
	return nil
}

// EnsureSandboxImage returns the sandbox image, pulling it when it is missing.
func (s *Service) EnsureSandboxImage(ctx context.Context) (*Image, error) {
	ref := s.SandboxImage()
	if img := s.idx.byName(ref); img != nil {
		return img, nil
	}
	img, err := s.Pull(ctx, ref, nil)
	if err != nil {
		return nil, fmt.Errorf("sandbox image %s: %w", ref, err)
	}
	return img, nil
}
