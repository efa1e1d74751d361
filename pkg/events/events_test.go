package events

import (
	"testing"
	"time"
)

func TestBroadcaster(t *testing.T) {
	var b Broadcaster
	b.Publish(Event{ContainerID: "before"}) // nobody listens: dropped quietly
	ch1, cancel1 := b.Subscribe()
	ch2, cancel2 := b.Subscribe()
	b.Publish(Event{Type: Started, ContainerID: "c1"})
	for _, ch := range []<-chan Event{ch1, ch2} {
		select {
		case e := <-ch:
			if e.ContainerID != "c1" || e.Type != Started || e.At.IsZero() {
				t.Errorf("event = %+v", e)
			}
		case <-time.After(time.Second):
			t.Fatal("no event")
		}
	}
	cancel1()
	// A follower that never reads does not block publishers.
	for range bufferSize + 10 {
		b.Publish(Event{ContainerID: "flood"})
	}
	cancel2()
	b.Publish(Event{ContainerID: "after"})
}
