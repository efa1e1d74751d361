package oci

import (
	"context"
	"fmt"
	"slices"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UserNS is a pod's own user namespace (kubelet's hostUsers: false): where it is
// pinned and how its IDs map to the node's.
type UserNS struct {
	Path     string
	UID, GID specs.LinuxIDMapping
}

// PodUserNS returns the mappings of a pod's own user namespace when its namespace
// options ask for one (mode POD, one uid and one gid mapping: pkg/validate checks).
func PodUserNS(ns *runtimeapi.NamespaceOption) (uid, gid specs.LinuxIDMapping, ok bool) {
	u := ns.GetUsernsOptions()
	if u == nil || u.GetMode() != runtimeapi.NamespaceMode_POD || len(u.GetUids()) != 1 || len(u.GetGids()) != 1 {
		return uid, gid, false
	}
	return idMapping(u.GetUids()[0]), idMapping(u.GetGids()[0]), true
}

func idMapping(m *runtimeapi.IDMapping) specs.LinuxIDMapping {
	return specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
}

func idMappings(ms []*runtimeapi.IDMapping) []specs.LinuxIDMapping {
	var out []specs.LinuxIDMapping
	for _, m := range ms {
		out = append(out, idMapping(m))
	}
	return out
}

// SnapshotOpts label a container's new root filesystem snapshot with the pod's
// mappings: the overlay snapshotter then gives id-mapped mounts of the image layers,
// so files the image's root owns are root's inside the pod (no copy, no chown).
func SnapshotOpts(u *UserNS) []snapshots.Opt {
	if u == nil {
		return nil
	}
	return []snapshots.Opt{containerd.WithUserNSRemapperLabels([]specs.LinuxIDMapping{u.UID}, []specs.LinuxIDMapping{u.GID})}
}

// withUserNS joins the pod's pinned user namespace with its mappings (runc checks
// them against the namespace's).
func withUserNS(u *UserNS) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *specs.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.UIDMappings = []specs.LinuxIDMapping{u.UID}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{u.GID}
		return oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: u.Path})(ctx, client, c, s)
	}
}

// checkContainerUserNS requires a container's user namespace options to be its
// pod's: kubelet repeats the pod's in every container.
func checkContainerUserNS(u *runtimeapi.UserNamespace, pod *UserNS) error {
	if u == nil {
		return nil
	}
	switch {
	case u.GetMode() == runtimeapi.NamespaceMode_NODE && pod == nil:
		return nil
	case u.GetMode() == runtimeapi.NamespaceMode_NODE:
		return fmt.Errorf("security_context.namespace_options.userns_options: mode NODE in a pod with its own user namespace: %w", errdefs.ErrInvalidArgument)
	case pod == nil:
		return fmt.Errorf("security_context.namespace_options.userns_options: mode %v in a pod without its own user namespace (the pod sandbox's options decide): %w", u.GetMode(), errdefs.ErrInvalidArgument)
	}
	if !slices.Equal(idMappings(u.GetUids()), []specs.LinuxIDMapping{pod.UID}) || !slices.Equal(idMappings(u.GetGids()), []specs.LinuxIDMapping{pod.GID}) {
		return fmt.Errorf("security_context.namespace_options.userns_options: the mappings differ from the pod sandbox's (uid %v, gid %v): %w", pod.UID, pod.GID, errdefs.ErrInvalidArgument)
	}
	return nil
}
