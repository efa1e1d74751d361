package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox lists sandboxes from memory, filtered by ID prefix, state and labels.
func (s *Server) ListPodSandbox(ctx context.Context, r *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := r.GetFilter()
	all := s.Sandboxes.List()
	out := make([]*runtimeapi.PodSandbox, 0, len(all))
	for _, sb := range all {
		if !hasIDPrefix(sb.ID, f.GetId()) {
			continue
		}
		state := sandboxState(sb)
		if f.GetState() != nil && f.GetState().State != state {
			continue
		}
		if !matchesLabels(sb.Config.GetLabels(), f.GetLabelSelector()) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{
			Id:             sb.ID,
			Metadata:       sandboxMetadata(sb),
			State:          state,
			CreatedAt:      sb.CreatedAt,
			Labels:         sb.Config.GetLabels(),
			Annotations:    sb.Config.GetAnnotations(),
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}
