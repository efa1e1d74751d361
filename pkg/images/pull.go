package images

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.opentelemetry.io/otel/attribute"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/metrics"
	"github.com/keelson/keelson/pkg/tracing"
)

// Pull fetches ref and unpacks it into the snapshotter for this platform, and returns
// the image. Concurrent pulls of one reference with the same credentials share one
// download; the download goes on if the caller gives up, so a retry finds it done.
func (s *Service) Pull(ctx context.Context, ref string, auth *Auth) (*Image, error) {
	named, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	key := named.String() + "\x00" + auth.key()
	ch := s.pulls.DoChan(key, func() (any, error) {
		// Detached from any one caller; the progress timeout bounds it.
		return s.pull(context.WithoutCancel(ctx), named, auth)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("pulling %s: %w", named, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Image), nil
	}
}

func (s *Service) pull(ctx context.Context, named reference.Named, auth *Auth) (_ *Image, retErr error) {
	ref := named.String()
	host := reference.Domain(named)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	opts := s.pullOpts.Load()
	prog := newProgress(ref, opts.PullProgressTimeout, cancel)
	s.inProgress.Store(ref, prog)
	defer s.inProgress.Delete(ref)
	ctx, span := tracing.Start(ctx, "image.pull", attribute.String("image.ref", ref))
	defer func(start time.Time) {
		span.SetAttributes(attribute.Int64("image.pull.bytes", prog.bytes.Load()))
		tracing.End(span, retErr)
		metrics.ObservePull(start, prog.bytes.Load(), retErr)
	}(time.Now())
	go prog.watch(ctx, ref)

	klog.V(2).InfoS("Pulling image", "ref", ref)
	fetch := s.clientFetch
	if s.opts.Transfer && (auth.empty() || auth.RegistryToken == "") {
		fetch = s.transferFetch
	}
	rec, err := fetch(ctx, ref, host, auth, opts, prog)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return nil, fmt.Errorf("%v: %w", cause, errdefs.ErrUnavailable)
		}
		return nil, pullError(ref, host, err)
	}
	c, err := s.contentOf(ctx, rec)
	if err != nil {
		return nil, err
	}
	s.idx.set(rec.Name, c)
	// Also name the image by repo digest and by ID, as containerd's CRI does, so all
	// three survive a restart and resolve to the same image.
	for _, name := range []string{repoDigest(named, rec.Target.Digest.String()), c.ID} {
		if name == rec.Name {
			continue
		}
		if err := s.putRecord(ctx, name, rec.Target); err != nil {
			return nil, err
		}
		s.idx.set(name, c)
	}
	s.triggerFsUsage()
	out := s.idx.byID(c.ID)
	klog.V(2).InfoS("Pulled image", "ref", ref, "id", c.ID, "size", c.Size)
	return out, nil
}

// clientFetch pulls through the containerd client: blobs are fetched here and
// written into containerd's content store over gRPC, and unpacked from here. It is
// the path for containerd 1.x (no Transfer service) and for a bearer registry token
// (which 2.x's Transfer service does not apply).
func (s *Service) clientFetch(ctx context.Context, ref, host string, auth *Auth, opts *PullOptions, prog *progress) (_ images.Image, retErr error) {
	if !auth.empty() && auth.RegistryToken != "" {
		prog.token, prog.tokenFor = auth.RegistryToken, auth.ServerAddress
		if prog.tokenFor == "" {
			prog.tokenFor = host
		}
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: config.ConfigureHosts(ctx, config.HostOptions{
			HostDir:      config.HostDirFromRoot(opts.RegistryConfigDir),
			Credentials:  func(h string) (string, string, error) { return pullCredentials(auth, opts, h) },
			UpdateClient: prog.wrap,
		}),
	})

	// Digests this pull fetches, to abort its partial downloads if it fails.
	var mu sync.Mutex
	var fetched []digest.Digest
	track := images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		if images.IsLayerType(desc.MediaType) {
			prog.layers.Add(1)
			prog.total.Add(desc.Size)
		}
		mu.Lock()
		fetched = append(fetched, desc.Digest)
		mu.Unlock()
		return nil, nil
	})
	defer func() {
		if retErr != nil {
			mu.Lock()
			s.abortIngests(fetched)
			mu.Unlock()
		}
	}()

	img, err := s.client.Pull(ctx, ref,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(s.opts.Snapshotter),
		containerd.WithPlatformMatcher(s.platform),
		containerd.WithDownloadLimiter(s.limiter),
		containerd.WithImageHandler(track),
	)
	if err != nil {
		return images.Image{}, err
	}
	return img.Metadata(), nil
}

// pullCredentials are the credentials for host (a registry or a mirror): the pull
// request's, else images.auth_file's.
func pullCredentials(auth *Auth, opts *PullOptions, host string) (string, string, error) {
	if !auth.empty() {
		return auth.credentials(host)
	}
	fileAuth, err := loadAuthFile(opts.AuthFile, host)
	if err != nil {
		return "", "", err
	}
	return fileAuth.credentials(host)
}

// PullProgress reports the pull of ref in progress, if there is one.
func (s *Service) PullProgress(ref string) (PullProgress, bool) {
	named, err := Normalize(ref)
	if err != nil {
		return PullProgress{}, false
	}
	p, ok := s.inProgress.Load(named.String())
	if !ok {
		return PullProgress{}, false
	}
	return p.(*progress).snapshot(), true
}

// putRecord creates or updates the containerd image record name → target.
func (s *Service) putRecord(ctx context.Context, name string, target ocispec.Descriptor) error {
	is := s.client.ImageService()
	rec := images.Image{Name: name, Target: target}
	if _, err := is.Create(ctx, rec); err != nil {
		if !errdefs.IsAlreadyExists(err) {
			return fmt.Errorf("naming image %s: %w", name, err)
		}
		if _, err := is.Update(ctx, rec, "target"); err != nil {
			return fmt.Errorf("renaming image %s: %w", name, err)
		}
	}
	return nil
}

// abortIngests drops partial downloads of the given digests, so a failed pull leaves
// nothing behind (committed blobs without an image are garbage collected).
func (s *Service) abortIngests(digests []digest.Digest) {
	if len(digests) == 0 {
		return
	}
	want := map[digest.Digest]bool{}
	for _, d := range digests {
		want[d] = true
	}
	ctx := context.Background()
	store := s.client.ContentStore()
	statuses, err := store.ListStatuses(ctx)
	if err != nil {
		klog.ErrorS(err, "Listing partial downloads to abort")
		return
	}
	for _, st := range statuses {
		if want[st.Expected] || refHasDigest(st.Ref, want) {
			if err := store.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
				klog.ErrorS(err, "Aborting partial download", "ref", st.Ref)
			}
		}
	}
}

func refHasDigest(ref string, want map[digest.Digest]bool) bool {
	for d := range want {
		if strings.Contains(ref, d.String()) {
			return true
		}
	}
	return false
}

// pullError turns what the resolver and fetcher return into errors that say what went
// wrong and carry the right kind (and so the right gRPC code).
func pullError(ref, host string, err error) error {
	var status remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &status) {
		switch status.StatusCode {
		case 401:
			return fmt.Errorf("pulling %s: authentication failed for registry %s (check the pull credentials): %v: %w", ref, host, err, errdefs.ErrUnauthenticated)
		case 403:
			return fmt.Errorf("pulling %s: registry %s denied access: %v: %w", ref, host, err, errdefs.ErrPermissionDenied)
		}
	}
	msg := err.Error()
	if strings.Contains(msg, "401 Unauthorized") || strings.Contains(msg, "authorization failed") || strings.Contains(msg, "failed to authorize") {
		return fmt.Errorf("pulling %s: authentication failed for registry %s (check the pull credentials): %v: %w", ref, host, err, errdefs.ErrUnauthenticated)
	}
	if strings.Contains(msg, "no match for platform") {
		return fmt.Errorf("image %s has no variant for this node's platform (%s): %v: %w", ref, platformString(), err, errdefs.ErrNotFound)
	}
	var netErr net.Error
	var opErr *net.OpError
	// Through the Transfer service the error is text only.
	unreachable := strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") ||
		strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "network is unreachable")
	if unreachable || errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout()) {
		return fmt.Errorf("pulling %s: registry %s (or its configured mirrors) unreachable: %v: %w", ref, host, err, errdefs.ErrUnavailable)
	}
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("image %s not found in registry %s or its configured mirrors: %w", ref, host, err)
	}
	return fmt.Errorf("pulling %s: %w", ref, err)
}
