package images

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// progress watches one pull's HTTP traffic. A pull is stalled when requests are in
// flight but no body byte has arrived for the timeout; a slow pull that keeps moving,
// or one waiting for a download slot (nothing in flight), is never cut.
type progress struct {
	ref      string
	started  time.Time
	layers   atomic.Int32 // layers the pull fetches, as their descriptors are seen
	total    atomic.Int64 // their sizes
	timeout  time.Duration
	cancel   context.CancelCauseFunc
	bytes    atomic.Int64
	active   atomic.Int32
	mu       sync.Mutex
	current  string // URL of the latest request in flight, for the error message
	token    string // bearer token to add (CRI RegistryToken), if any
	tokenFor string
}

func newProgress(ref string, timeout time.Duration, cancel context.CancelCauseFunc) *progress {
	return &progress{ref: ref, started: time.Now(), timeout: timeout, cancel: cancel}
}

// PullProgress is how far a pull in progress has come.
type PullProgress struct {
	Ref        string    `json:"ref"`
	Bytes      int64     `json:"bytes"`      // read from registries so far
	TotalBytes int64     `json:"totalBytes"` // of the layers known so far (grows as manifests are read)
	Layers     int       `json:"layers"`     // known so far
	StartedAt  time.Time `json:"startedAt"`
}

func (p *progress) snapshot() PullProgress {
	return PullProgress{Ref: p.ref, Bytes: p.bytes.Load(), TotalBytes: p.total.Load(), Layers: int(p.layers.Load()), StartedAt: p.started}
}

// wrap makes client report to p (config.HostOptions.UpdateClient).
func (p *progress) wrap(client *http.Client) error {
	next := client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client.Transport = roundTripper{p: p, next: next}
	return nil
}

type roundTripper struct {
	p    *progress
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	p := rt.p
	if p.token != "" && req.Header.Get("Authorization") == "" && sameHost(p.tokenFor, req.URL.Host) {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	p.active.Add(1)
	p.mu.Lock()
	p.current = req.URL.String()
	p.mu.Unlock()
	resp, err := rt.next.RoundTrip(req)
	if err != nil {
		p.active.Add(-1)
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, p: p}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	p      *progress
	closed atomic.Bool
}

func (b *countingBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	b.p.bytes.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		b.p.active.Add(-1)
	}
	return b.ReadCloser.Close()
}

// watch cancels the pull when it stalls, until ctx ends.
func (p *progress) watch(ctx context.Context, ref string) {
	tick := min(p.timeout/10, time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	last, lastChange := p.bytes.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := p.bytes.Load()
		if now != last || p.active.Load() == 0 {
			last, lastChange = now, time.Now()
			continue
		}
		if time.Since(lastChange) >= p.timeout {
			p.mu.Lock()
			cur := p.current
			p.mu.Unlock()
			p.cancel(fmt.Errorf("pull of %s cancelled: no data for %s (images.pull_progress_timeout) while downloading %s", ref, p.timeout, cur))
			return
		}
	}
}
