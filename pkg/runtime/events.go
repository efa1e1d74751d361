package runtime

import (
	"context"
	"time"

	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/typeurl/v2"
	"k8s.io/klog/v2"
)

// Subscribe delivers containerd events matching filters to handle, in order, until
// ctx ends. When the stream breaks (containerd restarted) it resubscribes with
// backoff and then calls resync, because events may have been missed meanwhile.
// handle gets the decoded event (e.g. *eventstypes.TaskExit) and the envelope.
func (c *Conn) Subscribe(ctx context.Context, handle func(ev any, env *events.Envelope), resync func(), filters ...string) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		subCtx, cancel := context.WithCancel(ctx)
		envs, errs := c.Client.Subscribe(subCtx, filters...)
		if !first && resync != nil {
			resync()
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
				handle(ev, env)
			case err := <-errs:
				if ctx.Err() == nil {
					klog.V(2).InfoS("containerd event stream broke; resubscribing", "filters", filters, "err", err, "after", backoff)
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
