// Package cri serves the CRI v1 RuntimeService and ImageService over gRPC. Handlers
// are thin: they translate CRI messages to calls on the domain packages and back.
// One file per RPC; the interceptor in interceptor.go logs, times, recovers and maps
// errors, so handlers return plain %w-wrapped errors.
package cri

import (
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/events"
)

// Health reports whether the runtime backend (containerd) is usable, from memory.
type Health interface {
	Health() (ready bool, reason, message string)
	Version() string
}

// Network reports whether pod networking is usable (nil) and records the pod CIDR.
type Network interface {
	Status() error
	SetPodCIDR(cidr string) error
}

// Handler is one runtime handler (RuntimeClass) as advertised in Status.
type Handler struct {
	Name                    string
	RecursiveReadOnlyMounts bool
	UserNamespaces          bool
}

// Server implements the CRI services. RPCs without a handler file answer Unimplemented.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	Runtime        Health
	Network        Network
	Images         ImageService
	Sandboxes      SandboxService
	Containers     ContainerService
	Checkpointer   Checkpointer
	Stats          StatsService // stats RPCs; nil answers Unimplemented
	Events         *events.Broadcaster
	Handlers       []Handler // the default handler first
	DefaultHandler string
	Info           func() map[string]string // verbose Status info; may be nil
	Streaming      StreamingService         // Exec/Attach/PortForward URLs; nil answers Unavailable
	SystemdCgroup  bool                     // the systemd cgroup driver is in use (else cgroupfs)
	// StreamChunkBytes bounds each message of the Stream* RPCs (0: 2 MiB).
	StreamChunkBytes int
}

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}
