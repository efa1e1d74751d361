package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainers lists containers from memory, filtered by ID prefix, state, pod
// sandbox and labels.
func (s *Server) ListContainers(ctx context.Context, r *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := r.GetFilter()
	all := s.Containers.List()
	out := make([]*runtimeapi.Container, 0, len(all))
	for _, c := range all {
		if !hasIDPrefix(c.ID, f.GetId()) || !hasIDPrefix(c.SandboxID, f.GetPodSandboxId()) {
			continue
		}
		if f.GetState() != nil && f.GetState().State != containerState(c) {
			continue
		}
		if !matchesLabels(c.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, toCRIContainer(c))
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}
