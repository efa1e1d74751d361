package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Attach returns the streaming URL of an attach session to a running container.
func (s *Server) Attach(ctx context.Context, r *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if !r.GetStdout() && !r.GetStderr() {
		return nil, fmt.Errorf("attach: one of stdout or stderr must be requested: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.runningContainer(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	return s.Streaming.GetAttach(&runtimeapi.AttachRequest{
		ContainerId: c.ID, Tty: r.GetTty(),
		Stdin: r.GetStdin(), Stdout: r.GetStdout(), Stderr: r.GetStderr(),
	})
}
