package cri

import (
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/events"
)

var eventTypes = map[events.Type]runtimeapi.ContainerEventType{
	events.Created: runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT,
	events.Started: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT,
	events.Stopped: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT,
	events.Deleted: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT,
}

// GetContainerEvents streams sandbox and container lifecycle events, each with the
// pod's current status attached (kubelet's evented PLEG), until the client leaves.
func (s *Server) GetContainerEvents(r *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ch, cancel := s.Events.Subscribe()
	defer cancel()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case e := <-ch:
			if err := stream.Send(s.containerEvent(e)); err != nil {
				return err
			}
		}
	}
}

func (s *Server) containerEvent(e events.Event) *runtimeapi.ContainerEventResponse {
	resp := &runtimeapi.ContainerEventResponse{
		ContainerId:        e.ContainerID,
		ContainerEventType: eventTypes[e.Type],
		CreatedAt:          e.At.UnixNano(),
	}
	if sb, err := s.Sandboxes.Get(e.SandboxID); err == nil {
		resp.PodSandboxStatus = toCRISandboxStatus(sb)
	}
	resp.ContainersStatuses = s.podContainerStatuses(e.SandboxID)
	return resp
}

// podContainerStatuses are the statuses of a pod's containers (evented PLEG reads
// them with the pod's status).
func (s *Server) podContainerStatuses(sandboxID string) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range s.Containers.List() {
		if c.SandboxID == sandboxID {
			out = append(out, toCRIContainerStatus(c))
		}
	}
	return out
}
