// Package events carries lifecycle events of sandboxes and containers to whoever
// follows them (CRI GetContainerEvents, for kubelet's evented PLEG).
package events

import (
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// Type is what happened.
type Type int

const (
	Created Type = iota
	Started
	Stopped
	Deleted
)

// Event is one lifecycle change. For a sandbox's own changes ContainerID is the
// sandbox ID.
type Event struct {
	Type        Type
	ContainerID string
	SandboxID   string
	At          time.Time
}

// bufferSize is how many events a slow follower may lag behind before it loses some.
const bufferSize = 1024

// Broadcaster fans events out to followers. Publishing never blocks: a follower
// whose buffer is full misses events (and is told so in the log), so one stuck
// client cannot stall container lifecycles.
type Broadcaster struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

// Publish sends e to every follower.
func (b *Broadcaster) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			klog.InfoS("Dropping a lifecycle event for a slow follower", "containerID", e.ContainerID, "type", e.Type)
		}
	}
}

// Subscribe returns a channel of events and a function that ends the subscription.
func (b *Broadcaster) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, bufferSize)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}
