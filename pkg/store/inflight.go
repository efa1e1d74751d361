package store

import (
	"context"
	"sync"
	"time"
)

// Inflight runs creations keyed by name (a pod or container name) so that a client
// that gave up waiting can retry with the same name and get the result instead of
// "name is reserved": the work goes on detached from the caller, and a successful
// result is kept for a while for whoever asks for that name next.
type Inflight[T any] struct {
	mu    sync.Mutex
	calls map[string]*inflightCall[T]
}

type inflightCall[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// Do returns the result of fn for key. If a call for key is running, or finished
// successfully and nobody collected it yet, it waits for that one instead of starting
// another. fn runs on a context detached from ctx (values kept, cancellation not);
// when ctx ends first, Do returns ctx's error and a successful result is kept for
// keep, then dropped (the created object stays; the client sees it in lists).
func (f *Inflight[T]) Do(ctx context.Context, key string, keep time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*inflightCall[T]{}
	}
	c, ok := f.calls[key]
	if !ok {
		c = &inflightCall[T]{done: make(chan struct{})}
		f.calls[key] = c
		go func() {
			c.val, c.err = fn(context.WithoutCancel(ctx))
			close(c.done)
			if c.err != nil {
				f.forget(key, c) // a failure is not kept: a retry runs again
				return
			}
			time.AfterFunc(keep, func() { f.forget(key, c) })
		}()
	}
	f.mu.Unlock()
	select {
	case <-c.done:
		f.forget(key, c)
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// forget drops c for key if it is still the call recorded there.
func (f *Inflight[T]) forget(key string, c *inflightCall[T]) {
	f.mu.Lock()
	if f.calls[key] == c {
		delete(f.calls, key)
	}
	f.mu.Unlock()
}
