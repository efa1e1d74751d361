package harness

import (
	"context"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// Namespace is the containerd namespace keelson uses by default.
const Namespace = "keelson"

// ContainerdClient connects to the containerd keelson uses, to look behind keelson's
// back (leaks, partial downloads); closed when the test ends.
func (k *Keelson) ContainerdClient(t testing.TB) *containerd.Client {
	t.Helper()
	c, err := containerd.New(k.ContainerdSocket, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Ctx is a context for a test's calls, bounded so a hang fails the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
