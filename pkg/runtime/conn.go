// Package runtime owns keelson's connection to containerd: dialing it, watching its
// health, and supervising the containerd child keelson runs by default. It is the
// only package that creates a containerd client.
package runtime

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/metrics"
	"github.com/keelson/keelson/pkg/tracing"
)

// Conn is a containerd client plus a cached view of containerd's health, so that CRI
// Status answers from memory.
type Conn struct {
	Client    *containerd.Client
	Address   string
	Namespace string

	callTimeout time.Duration

	mu        sync.RWMutex
	ready     bool
	everReady bool // ready at least once: a later ready is a reconnect
	reason    string
	message   string
	version   string
}

// Reasons reported in the RuntimeReady condition.
const (
	ReasonContainerdUnreachable = "ContainerdUnreachable"
	ReasonContainerdExited      = "ContainerdExited"
)

// Dial connects to containerd at address and waits, up to connectTimeout, until it
// answers its health check.
func Dial(ctx context.Context, address, namespace string, connectTimeout, callTimeout time.Duration) (*Conn, error) {
	cli, err := containerd.New(address,
		containerd.WithDefaultNamespace(namespace),
		containerd.WithTimeout(connectTimeout),
		containerd.WithExtraDialOpts(tracing.DialOptions()),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to containerd at %s: %w", address, err)
	}
	c := &Conn{Client: cli, Address: address, Namespace: namespace, callTimeout: callTimeout}
	deadline := time.Now().Add(connectTimeout)
	var lastErr error
	for {
		if lastErr = c.Check(ctx); lastErr == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			cli.Close()
			return nil, fmt.Errorf("containerd at %s did not answer within %s: %w", address, connectTimeout, lastErr)
		}
		select {
		case <-ctx.Done():
			cli.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Check asks containerd whether it serves, records the answer and returns it.
func (c *Conn) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.callTimeout)
	defer cancel()
	serving, err := c.Client.IsServing(ctx)
	if err == nil && !serving {
		err = fmt.Errorf("containerd at %s reports it is not serving", c.Address)
	}
	if err != nil {
		c.setHealth(false, ReasonContainerdUnreachable, fmt.Sprintf("containerd at %s does not answer: %v", c.Address, err))
		return err
	}
	if c.Version() == "" {
		if v, verr := c.Client.Version(ctx); verr == nil {
			c.mu.Lock()
			c.version = v.Version
			c.mu.Unlock()
		}
	}
	c.setHealth(true, "", "")
	return nil
}

// MarkDown records that containerd is known to be down (e.g. the supervised child exited)
// before the next health check notices.
func (c *Conn) MarkDown(reason, message string) { c.setHealth(false, reason, message) }

func (c *Conn) setHealth(ready bool, reason, message string) {
	c.mu.Lock()
	changed := c.ready != ready
	reconnect := changed && ready && c.everReady
	c.everReady = c.everReady || ready
	c.ready, c.reason, c.message = ready, reason, message
	c.mu.Unlock()
	if reconnect {
		metrics.ContainerdReconnects.Inc()
	}
	if changed {
		if ready {
			klog.InfoS("containerd is ready", "address", c.Address)
		} else {
			klog.InfoS("containerd is not ready", "address", c.Address, "reason", reason, "message", message)
		}
	}
}

// Health is the last known state: ready, and if not, why.
func (c *Conn) Health() (ready bool, reason, message string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.ready, c.reason, c.message
}

// Version is containerd's version as it reported it.
func (c *Conn) Version() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.version
}

// Watch checks health every interval until ctx ends. Checks are faster while
// containerd is down, so recovery shows quickly.
func (c *Conn) Watch(ctx context.Context, interval time.Duration) {
	for {
		wait := interval
		if ready, _, _ := c.Health(); !ready {
			wait = interval / 4
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		_ = c.Check(ctx)
	}
}

// Close closes the client connection.
func (c *Conn) Close() error { return c.Client.Close() }

// LabelImageVolumeOf marks a snapshot view that is an image volume (KEP-4639) of the
// container whose ID it holds; its mount point is ImageVolumeDir.
const LabelImageVolumeOf = "io.keelson.image-volume-of"

// ImageVolumeDir is where an image volume view (snapshot key "keelson-imgvol-<id>-<n>")
// is mounted on the host.
func ImageVolumeDir(stateDir, key string) string {
	return filepath.Join(stateDir, "image-volumes", strings.TrimPrefix(key, "keelson-imgvol-"))
}
