// Package oci builds OCI runtime specs from CRI configs, image configs and facts about
// the pod sandbox. No containerd connection, no gRPC: files they need (an image's
// /etc/passwd, a seccomp profile, the mount table) come in through functions the
// caller may replace. What they still read of the host themselves is small and
// cached: the cgroup version, whether hugetlb exists, this process's capabilities
// (for "ALL" and privileged). It uses containerd's oci spec options where they fit.
package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/safefile"
	"github.com/keelson/keelson/pkg/selinux"
)

// Annotations on every spec, as containerd's CRI sets them, for OCI runtimes and hooks
// that tell sandboxes from containers.
const (
	AnnotationContainerType = "io.kubernetes.cri.container-type"
	AnnotationSandboxID     = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName   = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNS     = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID    = "io.kubernetes.cri.sandbox-uid"
	AnnotationContainerName = "io.kubernetes.cri.container-name"
	AnnotationImageName     = "io.kubernetes.cri.image-name"
	ContainerTypeSandbox    = "sandbox"
	ContainerTypeContainer  = "container"
)

// SandboxOOMScoreAdj is what a pod's infra process asks for: last to be OOM-killed.
const SandboxOOMScoreAdj = -998

// ClampOOMScoreAdj raises adj to the lowest value this process may set (its own
// oom_score_adj) when it lacks CAP_SYS_RESOURCE; runc would otherwise fail with an
// opaque "can't get final child's PID from pipe: EOF". It also keeps adj within the
// kernel's [-1000, 1000], which runc would otherwise reject.
func ClampOOMScoreAdj(adj, own int) int {
	adj = max(adj, own, -1000)
	return min(adj, 1000)
}

// OwnOOMScoreAdj reads this process's oom_score_adj (0 if unreadable).
func OwnOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return v
}

// DefaultNamespace is the containerd namespace assumed when ctx names none. It only
// shows in the default cgroup path (/<namespace>/<id>) of a spec without a cgroup parent.
const DefaultNamespace = "keelson"

// generate builds a spec from containerd's Linux defaults plus opts. containerd's
// generator refuses a context without a namespace (FailedPrecondition, which kubelet
// would report as a spec problem), so one is supplied.
func generate(ctx context.Context, id string, opts ...oci.SpecOpts) (*specs.Spec, error) {
	if ns, ok := namespaces.Namespace(ctx); !ok || ns == "" {
		ctx = namespaces.WithNamespace(ctx, DefaultNamespace)
	}
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id}, opts...)
	if err != nil {
		return nil, err
	}
	// No rlimits of containerd's default spec (RLIMIT_NOFILE 1024): pods inherit
	// the runtime's limits, as with containerd's CRI and CRI-O. runc would also need
	// CAP_SYS_RESOURCE to set them on a process in a pod's user namespace.
	s.Process.Rlimits = nil
	return s, nil
}

// applySELinux sets the process label and the label of the mounts runc makes.
func applySELinux(s *specs.Spec, l selinux.Labels) {
	if l.Process != "" {
		s.Process.SelinuxLabel = l.Process
	}
	if l.Mount != "" {
		s.Linux.MountLabel = l.Mount
	}
}

// withCgroupsPath puts a sandbox's or container's cgroup under the pod's parent, in
// the driver's form (cgroups.Path); cgroupfs without a parent keeps containerd's
// default, /<namespace>/<id>.
func withCgroupsPath(driver, parent, id string) oci.SpecOpts {
	return func(ctx context.Context, c oci.Client, ctr *containers.Container, s *specs.Spec) error {
		if p := cgroups.Path(driver, parent, id); p != "" {
			return oci.WithCgroup(p)(ctx, c, ctr, s)
		}
		return nil
	}
}

// withSeccomp applies a CRI seccomp choice. RuntimeDefault uses keelson's default
// profile; Localhost reads the named file; Unconfined and unset apply none (the
// kubelet default for an unset profile is Unconfined). Privileged pods never get one.
func withSeccomp(ctx context.Context, sp *runtimeapi.SecurityProfile, privileged bool, readFile func(string) ([]byte, error)) (oci.SpecOpts, error) {
	if privileged || sp == nil {
		return nil, nil
	}
	switch sp.ProfileType {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil, nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		return seccomp.WithDefaultProfile(), nil
	case runtimeapi.SecurityProfile_Localhost:
		path := sp.LocalhostRef
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("seccomp localhost profile %q must be an absolute path: %w", path, errdefs.ErrInvalidArgument)
		}
		if readFile == nil {
			// A regular file of bounded size only: the path comes from the request.
			readFile = func(p string) ([]byte, error) { return safefile.ReadFile(ctx, p, safefile.MaxRead) }
		}
		data, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("seccomp localhost profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
		}
		return withSeccompProfileJSON(path, data), nil
	}
	return nil, fmt.Errorf("unknown seccomp profile type %v: %w", sp.ProfileType, errdefs.ErrInvalidArgument)
}

// SpecCgroupsPath is the cgroupsPath of a spec kept as JSON ("" if none).
func SpecCgroupsPath(spec []byte) string {
	var s struct {
		Linux *struct {
			CgroupsPath string `json:"cgroupsPath"`
		} `json:"linux"`
	}
	if json.Unmarshal(spec, &s) != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}
