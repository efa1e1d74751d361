package integration

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

func TestContainerEventsInOrder(t *testing.T) {
	k := containerTestKeelson(t)
	ctx, cancel := context.WithCancel(harness.Ctx(t))
	defer cancel()
	stream, err := k.Runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *runtimeapi.ContainerEventResponse, 100)
	go func() {
		for {
			e, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- e
		}
	}()
	time.Sleep(200 * time.Millisecond) // let the subscription land

	p := newPod(t, k, "events")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "1000"))
	stopCtr(t, k, id, 0)
	removeCtr(t, k, id)
	stopAndRemovePod(t, k, p.id)

	type ev struct {
		id  string
		typ runtimeapi.ContainerEventType
	}
	want := []ev{
		{p.id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{p.id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
		{p.id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT},
		{p.id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
	}
	var prev int64
	for i, w := range want {
		select {
		case e, ok := <-got:
			if !ok {
				t.Fatalf("stream ended after %d events", i)
			}
			if e.ContainerId != w.id || e.ContainerEventType != w.typ {
				t.Fatalf("event %d = %s %v, want %s %v", i, e.ContainerId[:12], e.ContainerEventType, w.id[:12], w.typ)
			}
			if e.CreatedAt < prev {
				t.Errorf("event %d goes back in time", i)
			}
			prev = e.CreatedAt
			if w.typ != runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT && e.PodSandboxStatus.GetId() != p.id {
				t.Errorf("event %d lacks the pod status: %v", i, e.PodSandboxStatus)
			}
			if w.id == id && w.typ == runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT && len(e.ContainersStatuses) != 1 {
				t.Errorf("started event lacks the container statuses: %v", e.ContainersStatuses)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d (%v) never came", i, w.typ)
		}
	}
	k.CheckNoLeaks(t)
}
