package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/sandbox"
)

// PortForward returns the streaming URL of a port-forward session into a ready pod.
func (s *Server) PortForward(ctx context.Context, r *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.Streaming == nil {
		return nil, fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	for _, p := range r.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, fmt.Errorf("port forward: invalid port %d: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	sb, err := s.Sandboxes.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if st := sb.Status().State; st != sandbox.StateReady {
		return nil, fmt.Errorf("pod sandbox %s is %s, not READY: %w", sb.ID, st, errdefs.ErrFailedPrecondition)
	}
	return s.Streaming.GetPortForward(&runtimeapi.PortForwardRequest{PodSandboxId: sb.ID, Port: r.GetPort()})
}
