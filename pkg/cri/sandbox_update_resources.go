package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UpdatePodSandboxResources is kubelet telling the runtime a pod's new resources
// after an in-place resize (KEP-1287); kubelet resizes the pod's cgroup itself.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, r *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	if err := s.Sandboxes.UpdateResources(ctx, r.GetPodSandboxId(), r.GetOverhead(), r.GetResources()); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdatePodSandboxResourcesResponse{}, nil
}
