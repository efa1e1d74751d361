package oci

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// currentCaps is what "ALL" grants: the capabilities this process has, since runc
// cannot hand a container one that its parent lacks. A variable for tests.
var currentCaps = cap.Current

// normalizeCap turns a Kubernetes capability name ("net_admin", "NET_ADMIN",
// "CAP_NET_ADMIN") into the OCI form ("CAP_NET_ADMIN").
func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// withCRICapabilities applies add/drop lists on top of the default set. "ALL" is
// applied first on each side, so add=[ALL] drop=[X] is everything but X and
// add=[X] drop=[ALL] is just X, as kubelet users expect from Docker.
func withCRICapabilities(c *runtimeapi.Capability) (oci.SpecOpts, error) {
	if c == nil {
		return nil, nil
	}
	var opts []oci.SpecOpts
	var add, drop []string
	for _, a := range c.GetAddCapabilities() {
		if strings.EqualFold(strings.TrimSpace(a), "ALL") {
			all, err := currentCaps()
			if err != nil {
				return nil, fmt.Errorf("reading this process's capabilities for add_capabilities ALL: %w", err)
			}
			opts = append(opts, oci.WithCapabilities(all))
			continue
		}
		add = append(add, normalizeCap(a))
	}
	for _, d := range c.GetDropCapabilities() {
		if strings.EqualFold(strings.TrimSpace(d), "ALL") {
			opts = append(opts, oci.WithCapabilities(nil))
			continue
		}
		drop = append(drop, normalizeCap(d))
	}
	opts = append(opts, oci.WithAddedCapabilities(add), oci.WithDroppedCapabilities(drop))
	return oci.Compose(opts...), nil
}

// withoutAmbientCaps clears ambient capabilities: what they mean for a non-root
// Kubernetes user is undefined, and Docker and containerd grant none.
func withoutAmbientCaps(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
	if s.Process != nil && s.Process.Capabilities != nil {
		s.Process.Capabilities.Ambient = nil
	}
	return nil
}
