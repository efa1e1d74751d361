package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/sandbox"
)

// PodSandboxStats answers from the stats cache; a ready pod's tasks are sampled first
// when older than stats.FreshAge. A pod that is not ready reports its containers only.
func (s *Server) PodSandboxStats(ctx context.Context, r *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	st, err := s.stats()
	if err != nil {
		return nil, err
	}
	sb, err := s.Sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	ready := sb.Status().State == sandbox.StateReady
	if ready {
		st.Ensure(ctx, sb.ID)
	}
	ps, _ := st.Pod(sb.ID)
	if !ready {
		ps.CPU, ps.Memory, ps.Process, ps.Network = nil, nil, nil, nil
	}
	containers := podContainerStats(st, s.Containers.List(), func(id string) bool { return id == sb.ID })
	return &runtimeapi.PodSandboxStatsResponse{Stats: toCRIPodStats(sb, ps, containers[sb.ID])}, nil
}
