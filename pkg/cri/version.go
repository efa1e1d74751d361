package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/version"
)

// RuntimeName is what Version reports as the runtime's name.
const RuntimeName = "keelson"

// Version reports keelson's name and version and the CRI API version it serves.
func (s *Server) Version(ctx context.Context, r *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           "0.1.0", // version of the kubelet runtime API, as containerd and CRI-O report it
		RuntimeName:       RuntimeName,
		RuntimeVersion:    version.Get(),
		RuntimeApiVersion: version.CRIVersion,
	}, nil
}
