package oci

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func withSeccompProfileJSON(path string, data []byte) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		var prof specs.LinuxSeccomp
		if err := json.Unmarshal(data, &prof); err != nil {
			return fmt.Errorf("seccomp localhost profile %s is not an OCI seccomp profile: %v: %w", path, err, errdefs.ErrInvalidArgument)
		}
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Seccomp = &prof
		return nil
	}
}
