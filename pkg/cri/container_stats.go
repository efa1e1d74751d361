package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/container"
)

// ContainerStats answers from the stats cache; a running container's task is sampled
// first when its sample is older than stats.FreshAge.
func (s *Server) ContainerStats(ctx context.Context, r *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	st, err := s.stats()
	if err != nil {
		return nil, err
	}
	c, err := s.Containers.Get(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	if c.Status().State == container.StateRunning {
		st.Ensure(ctx, c.ID)
	}
	cs, _ := st.Container(c.ID)
	return &runtimeapi.ContainerStatsResponse{Stats: toCRIContainerStats(c, cs)}, nil
}
