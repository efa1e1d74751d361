// Package registry runs an OCI registry on 127.0.0.1 inside the test process
// (go-containerregistry's pkg/registry) and writes the containerd hosts.toml mirror
// config that makes real image names (registry.k8s.io/pause:3.10, docker.io/...)
// resolve to it. Middleware lets tests count requests, demand auth, or stall.
package registry

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/keelson/keelson/test/images"
)

// Registry is a running in-process registry.
type Registry struct {
	Addr string // host:port on 127.0.0.1

	srv      *http.Server
	mu       sync.Mutex
	wrap     func(http.Handler) http.Handler
	requests atomic.Int64
	blobGets atomic.Int64
}

// Start listens on 127.0.0.1 with a free port and serves until Close.
func Start() (*Registry, error) { return StartOn("127.0.0.1:0") }

// StartOn listens on addr and serves until Close.
func StartOn(addr string) (*Registry, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	r := &Registry{Addr: l.Addr().String()}
	inner := ggcrregistry.New(ggcrregistry.Logger(discardLogger()))
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			r.blobGets.Add(1)
		}
		r.mu.Lock()
		wrap := r.wrap
		r.mu.Unlock()
		var h http.Handler = inner
		if wrap != nil {
			h = wrap(inner)
		}
		h.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// SetMiddleware wraps every later request's handler (nil removes it).
func (r *Registry) SetMiddleware(wrap func(http.Handler) http.Handler) {
	r.mu.Lock()
	r.wrap = wrap
	r.mu.Unlock()
}

// Requests is the number of requests served so far; BlobGets counts blob downloads.
func (r *Registry) Requests() int64 { return r.requests.Load() }
func (r *Registry) BlobGets() int64 { return r.blobGets.Load() }

// LocalRef is where the image named ref (e.g. registry.k8s.io/pause:3.10) lives in
// this registry: the same repository path under 127.0.0.1:port.
func (r *Registry) LocalRef(ref string) (name.Reference, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	local := r.Addr + "/" + parsed.Context().RepositoryStr()
	if d, ok := parsed.(name.Digest); ok {
		return name.NewDigest(local+"@"+d.DigestStr(), name.Insecure)
	}
	return name.NewTag(local+":"+parsed.Identifier(), name.Insecure)
}

// Push stores img under ref's repository and tag in this registry.
func (r *Registry) Push(ref string, img v1.Image) error {
	local, err := r.LocalRef(ref)
	if err != nil {
		return err
	}
	if err := remote.Write(local, img); err != nil {
		return fmt.Errorf("pushing %s to %s: %w", ref, local, err)
	}
	return nil
}

// PushIndex stores an image index under ref's repository and tag.
func (r *Registry) PushIndex(ref string, idx v1.ImageIndex) error {
	local, err := r.LocalRef(ref)
	if err != nil {
		return err
	}
	return remote.WriteIndex(local, idx)
}

// PushAll pushes every image of the map.
func (r *Registry) PushAll(imgs map[string]v1.Image) error {
	for ref, img := range imgs {
		if err := r.Push(ref, img); err != nil {
			return err
		}
	}
	return nil
}

// upstreams maps the registry hosts tests use to their real servers (the "server" of
// a hosts.toml; never reached, the mirror answers first).
var upstreams = map[string]string{
	"docker.io":       "https://registry-1.docker.io",
	"registry.k8s.io": "https://registry.k8s.io",
	"quay.io":         "https://quay.io",
	"ghcr.io":         "https://ghcr.io",
}

// WriteMirrorConfig writes <dir>/<host>/hosts.toml for every host tests use, making
// this registry their plain-HTTP mirror.
func (r *Registry) WriteMirrorConfig(dir string) error {
	return r.WriteMirrorConfigFor(dir, "")
}

// WriteMirrorConfigFor is WriteMirrorConfig naming addr (host:port) as the mirror,
// e.g. a proxy a network namespace reaches; "" is the registry's own address.
func (r *Registry) WriteMirrorConfigFor(dir, addr string) error {
	if addr == "" {
		addr = r.Addr
	}
	for host, server := range upstreams {
		if err := WriteHostsToml(dir, host, server, "http://"+addr); err != nil {
			return err
		}
	}
	return nil
}

// WriteHostsToml writes one host's hosts.toml with mirror as its first pull/resolve host.
func WriteHostsToml(dir, host, server, mirror string) error {
	d := filepath.Join(dir, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	content := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", server, mirror)
	return os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(content), 0o644)
}

// StartWithTestImages starts a registry serving the standard test images
// (test/images.All) under their real names.
func StartWithTestImages() (*Registry, error) {
	r, err := Start()
	if err != nil {
		return nil, err
	}
	imgs, err := images.All()
	if err == nil {
		err = r.PushAll(imgs)
	}
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}
