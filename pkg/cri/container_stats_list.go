package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/stats"
)

// ListContainerStats answers for every container that passes the filter (ID
// prefix, pod sandbox ID prefix, labels), from the stats cache, sampled again first
// when older than stats.FreshAge. Containers whose task does not run report their
// writable layer only.
func (s *Server) ListContainerStats(ctx context.Context, r *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	st, err := s.stats()
	if err != nil {
		return nil, err
	}
	st.Ensure(ctx)
	f := r.GetFilter()
	filter := stats.Filter{ID: f.GetId(), SandboxID: f.GetPodSandboxId(), Labels: f.GetLabelSelector()}
	all := s.Containers.List()
	out := make([]*runtimeapi.ContainerStats, 0, len(all))
	for _, c := range all {
		if !filter.Match(c.ID, c.SandboxID, c.Config.GetLabels()) {
			continue
		}
		cs, _ := st.Container(c.ID)
		out = append(out, toCRIContainerStats(c, cs))
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}
