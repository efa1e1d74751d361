package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/container"
)

// StreamingService mints the URLs of streaming sessions (pkg/streaming).
type StreamingService interface {
	GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error)
	GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error)
	GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error)
}

// Exec returns the streaming URL of an exec session in a running container.
func (s *Server) Exec(ctx context.Context, r *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if len(r.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec: cmd is empty: %w", errdefs.ErrInvalidArgument)
	}
	if !r.GetStdout() && !r.GetStderr() {
		return nil, fmt.Errorf("exec: one of stdout or stderr must be requested: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.runningContainer(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	return s.Streaming.GetExec(&runtimeapi.ExecRequest{
		ContainerId: c.ID, Cmd: r.GetCmd(), Tty: r.GetTty(),
		Stdin: r.GetStdin(), Stdout: r.GetStdout(), Stderr: r.GetStderr(),
	})
}

// runningContainer resolves a container a streaming session is for.
func (s *Server) runningContainer(id string) (*container.Container, error) {
	if s.Streaming == nil {
		return nil, fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	c, err := s.Containers.Get(id)
	if err != nil {
		return nil, err
	}
	if st := c.Status().State; st != container.StateRunning {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}
