package oci

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/selinux"
)

// SandboxInput is what the pod infra container's spec is made of.
type SandboxInput struct {
	ID        string
	Config    *runtimeapi.PodSandboxConfig
	Image     ocispec.ImageConfig // the pause image's config
	NetNSPath string              // the pod's network namespace; "" with host networking
	OwnOOM    int                 // this process's oom_score_adj (the floor for the sandbox's)
	ReadFile  func(string) ([]byte, error)
	// CgroupDriver is cgroups.Systemd or cgroups.Cgroupfs ("" = cgroupfs).
	CgroupDriver string
	// UserNS is the pod's own user namespace (nil: the node's): the infra process
	// joins it, and the namespaces it makes are owned by it.
	UserNS *UserNS
	// SELinux are the pod's labels ("" where SELinux is off).
	SELinux selinux.Labels
}

// SandboxSpec builds the infra container's spec: it holds the pod's network, IPC and
// UTS namespaces (and PID, when the pod shares one), runs the pause process with a
// read-only root, in the pod's cgroup parent, with the pod's sysctls.
func SandboxSpec(ctx context.Context, in SandboxInput) (*specs.Spec, error) {
	cfg := in.Config
	lx := cfg.GetLinux()
	sc := lx.GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	hostIPC := nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE
	hostPID := nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE

	args := append(append([]string{}, in.Image.Entrypoint...), in.Image.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("sandbox image has neither entrypoint nor cmd: %w", errdefs.ErrInvalidArgument)
	}
	cwd := in.Image.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	opts := []oci.SpecOpts{
		oci.WithEnv(in.Image.Env),
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		oci.WithRootFSReadonly(),
		oci.WithNoNewPrivileges,
		oci.WithAnnotations(SandboxAnnotations(in.ID, cfg)),
	}
	if hostNet {
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	} else {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.NetNSPath}))
		if cfg.GetHostname() != "" {
			opts = append(opts, oci.WithHostname(cfg.GetHostname()))
		}
	}
	if hostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	}
	if in.UserNS != nil {
		opts = append(opts, withUserNS(in.UserNS))
	}
	if hostPID {
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	}
	opts = append(opts, withCgroupsPath(in.CgroupDriver, lx.GetCgroupParent(), in.ID))
	if uid := sc.GetRunAsUser(); uid != nil {
		if uid.Value < 0 || uid.Value > math.MaxInt32 {
			return nil, fmt.Errorf("sandbox run_as_user %d is out of range [0, %d]: %w", uid.Value, math.MaxInt32, errdefs.ErrInvalidArgument)
		}
		gid := uint32(0)
		if g := sc.GetRunAsGroup(); g != nil {
			if g.Value < 0 || g.Value > math.MaxInt32 {
				return nil, fmt.Errorf("sandbox run_as_group %d is out of range [0, %d]: %w", g.Value, math.MaxInt32, errdefs.ErrInvalidArgument)
			}
			gid = uint32(g.Value)
		}
		opts = append(opts, oci.WithUIDGID(uint32(uid.Value), gid))
	} else if in.Image.User != "" {
		opts = append(opts, withNumericUser(in.Image.User))
	}
	if sc.GetPrivileged() {
		opts = append(opts, oci.WithPrivileged)
	}
	seccompOpt, err := withSeccomp(ctx, sc.GetSeccomp(), sc.GetPrivileged(), in.ReadFile)
	if err != nil {
		return nil, err
	}
	if seccompOpt != nil {
		opts = append(opts, seccompOpt)
	}
	spec, err := generate(ctx, in.ID, opts...)
	if err != nil {
		return nil, err
	}
	if !sc.GetPrivileged() {
		applySELinux(spec, in.SELinux)
	}
	if len(lx.GetSysctls()) > 0 {
		spec.Linux.Sysctl = map[string]string{}
		for k, v := range lx.GetSysctls() {
			spec.Linux.Sysctl[k] = v
		}
	}
	if gids := sc.GetSupplementalGroups(); len(gids) > 0 {
		for _, g := range gids {
			if g < 0 || g > math.MaxInt32 {
				return nil, fmt.Errorf("supplemental group %d is out of range [0, %d]: %w", g, math.MaxInt32, errdefs.ErrInvalidArgument)
			}
			if !slices.Contains(spec.Process.User.AdditionalGids, uint32(g)) {
				spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(g))
			}
		}
	}
	adj := ClampOOMScoreAdj(SandboxOOMScoreAdj, in.OwnOOM)
	spec.Process.OOMScoreAdj = &adj
	return spec, nil
}

// SandboxAnnotations are the sandbox's identity annotations.
func SandboxAnnotations(id string, cfg *runtimeapi.PodSandboxConfig) map[string]string {
	md := cfg.GetMetadata()
	return map[string]string{
		AnnotationContainerType: ContainerTypeSandbox,
		AnnotationSandboxID:     id,
		AnnotationSandboxName:   md.GetName(),
		AnnotationSandboxNS:     md.GetNamespace(),
		AnnotationSandboxUID:    md.GetUid(),
	}
}

// withNumericUser applies an image USER of the form uid or uid:gid (the pause image's
// 65535:65535). Names need the image's /etc/passwd, which pause images do not have.
// A name, or a half-numeric value such as "65535abc", leaves the default (root).
func withNumericUser(user string) oci.SpecOpts {
	u, g, _ := strings.Cut(user, ":")
	uid, numeric, err := parseID(u)
	if err != nil || !numeric {
		return func(context.Context, oci.Client, *containers.Container, *specs.Spec) error { return nil }
	}
	var gid uint32
	if g != "" {
		if v, numeric, err := parseID(g); err == nil && numeric {
			gid = v
		}
	}
	return oci.WithUIDGID(uid, gid)
}

// InfraLessSandboxSpec is the spec recorded for a pod without a pause process: no
// process runs it; it carries the pod's identity for tools reading containerd.
func InfraLessSandboxSpec(id string, cfg *runtimeapi.PodSandboxConfig, cgroupDriver string) *specs.Spec {
	return &specs.Spec{
		Version:     specs.Version,
		Hostname:    cfg.GetHostname(),
		Annotations: SandboxAnnotations(id, cfg),
		Linux:       &specs.Linux{CgroupsPath: cgroups.Path(cgroupDriver, cfg.GetLinux().GetCgroupParent(), id), Sysctl: cfg.GetLinux().GetSysctls()},
	}
}
