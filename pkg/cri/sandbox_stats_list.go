package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/sandbox"
	"github.com/keelson/keelson/pkg/stats"
)

// ListPodSandboxStats answers for every ready pod that passes the filter (ID prefix,
// labels), with its containers' stats, from the stats cache, sampled again first when
// older than stats.FreshAge.
func (s *Server) ListPodSandboxStats(ctx context.Context, r *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	st, err := s.stats()
	if err != nil {
		return nil, err
	}
	st.Ensure(ctx)
	f := r.GetFilter()
	filter := stats.Filter{ID: f.GetId(), Labels: f.GetLabelSelector()}
	var pods []*sandbox.Sandbox
	want := map[string]bool{}
	for _, sb := range s.Sandboxes.List() {
		if sb.Status().State != sandbox.StateReady || !filter.Match(sb.ID, "", sb.Config.GetLabels()) {
			continue
		}
		pods = append(pods, sb)
		want[sb.ID] = true
	}
	containers := podContainerStats(st, s.Containers.List(), func(id string) bool { return want[id] })
	out := make([]*runtimeapi.PodSandboxStats, 0, len(pods))
	for _, sb := range pods {
		ps, _ := st.Pod(sb.ID)
		out = append(out, toCRIPodStats(sb, ps, containers[sb.ID]))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}
