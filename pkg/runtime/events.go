package runtime

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	"k8s.io/klog/v2"
)

// Subscription says what to follow and what to do.
type Subscription struct {
	Filters []string
	// Handle gets each decoded event (e.g. *eventstypes.TaskExit) and its envelope.
	Handle func(ev any, env *events.Envelope)
	// Broken, if set, runs when the stream breaks: containerd is probably gone.
	Broken func()
	// Resync, if set, runs after each resubscription: events may have been missed.
	Resync func()
}

// Subscribe delivers containerd events matching the subscription's filters, in
// order, until ctx ends. When the stream breaks (containerd restarted) it
// resubscribes with backoff.
func (c *Conn) Subscribe(ctx context.Context, sub Subscription) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		if !first {
			// A stream opened before containerd is back would break at once, and a
			// resync against a containerd that is still away would learn nothing.
			c.waitServing(ctx, backoff)
		}
		subCtx, cancel := context.WithCancel(ctx)
		envs, errs := c.Client.Subscribe(subCtx, sub.Filters...)
		if !first && sub.Resync != nil {
			sub.Resync()
		}
		first = false
		broken := false
		for !broken {
			select {
			case <-ctx.Done():
				cancel()
				return
			case env := <-envs:
				backoff = 100 * time.Millisecond
				if env == nil || env.Event == nil {
					continue
				}
				ev, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					klog.V(4).InfoS("Ignoring containerd event that does not decode", "topic", env.Topic, "err", err)
					continue
				}
				sub.Handle(ev, env)
			case err := <-errs:
				if ctx.Err() == nil {
					klog.V(2).InfoS("containerd event stream broke; resubscribing", "filters", sub.Filters, "err", err, "after", backoff)
					if sub.Broken != nil {
						sub.Broken()
					}
				}
				broken = true
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// waitServing returns once containerd answers (or ctx ends), asking every interval.
func (c *Conn) waitServing(ctx context.Context, interval time.Duration) {
	for ctx.Err() == nil {
		if c.Check(ctx) == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}
