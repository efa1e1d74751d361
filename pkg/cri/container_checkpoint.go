package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/validate"
)

// Checkpointer checkpoints running containers (CRIU through runc).
type Checkpointer interface {
	Checkpoint(ctx context.Context, id, location string, status []byte) error
}

// CheckpointContainer writes a checkpoint archive of a running container, which keeps
// running (KEP-2008, kubelet's checkpoint API).
func (s *Server) CheckpointContainer(ctx context.Context, r *runtimeapi.CheckpointContainerRequest) (*runtimeapi.CheckpointContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, fmt.Errorf("container_id is empty: %w", errdefs.ErrInvalidArgument)
	}
	if err := validate.CheckpointLocation("location", r.GetLocation()); err != nil {
		return nil, err
	}
	if r.GetTimeout() < 0 {
		return nil, fmt.Errorf("timeout %d is negative: %w", r.GetTimeout(), errdefs.ErrInvalidArgument)
	}
	st, err := s.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: r.GetContainerId()})
	if err != nil {
		return nil, err
	}
	status, err := protojson.Marshal(st.GetStatus())
	if err != nil {
		return nil, err
	}
	if r.GetTimeout() > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.GetTimeout())*time.Second)
		defer cancel()
	}
	if err := s.Checkpointer.Checkpoint(ctx, r.GetContainerId(), r.GetLocation(), status); err != nil {
		return nil, err
	}
	return &runtimeapi.CheckpointContainerResponse{}, nil
}
