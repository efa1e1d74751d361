package oci

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/selinux"
)

// ContainerInput is what a container's spec is made of.
type ContainerInput struct {
	ID            string
	Config        *runtimeapi.ContainerConfig
	SandboxConfig *runtimeapi.PodSandboxConfig
	Image         ocispec.ImageConfig // the container image's config
	ImageName     string              // for the image-name annotation
	Sandbox       SandboxFacts
	OwnOOM        int   // this process's oom_score_adj: the floor for the container's
	PidsLimit     int64 // configured pids limit; 0 = none

	RecursiveReadOnlySupported bool

	// ReadImageFile reads a file of the image's root fs ("/etc/passwd", "/etc/group");
	// its error satisfies errors.Is(err, os.ErrNotExist) when the file is absent.
	ReadImageFile func(path string) ([]byte, error)
	// ReadHostFile reads host files (seccomp localhost profiles); nil = a bounded read of a regular file.
	ReadHostFile func(path string) ([]byte, error)
	// MountPropagation tells the propagation of the host mount holding hostPath;
	// nil = HostMountPropagation (/proc/self/mountinfo).
	MountPropagation func(hostPath string) (shared, slave bool, err error)
	// HostDevices lists the devices a privileged container gets; nil = oci.HostDevices.
	HostDevices func() ([]specs.LinuxDevice, error)

	AppArmorEnabled bool
	SELinux         selinux.Labels // the container's labels ("" where SELinux is off)
	TargetPID       uint32         // pid of the target container when NamespaceOption.Pid == TARGET
	CgroupDriver    string         // cgroups.Systemd or cgroups.Cgroupfs ("" = cgroupfs)
}

// SandboxFacts are what a container needs to know of its pod sandbox.
type SandboxFacts struct {
	ID  string
	Pid uint32 // the infra process: containers join its namespaces via /proc/<pid>/ns/*
	// NetNSPath is the pod netns bind mount ("" with host network); preferred to
	// /proc/<pid>/ns/net, which would vanish with the infra process.
	NetNSPath                     string
	HostNetwork, HostIPC, HostPID bool
	Hostname                      string
	HostnamePath                  string  // bound at /etc/hostname unless ""
	HostsPath                     string  // bound at /etc/hosts unless "" or the container mounts it
	ResolvConfPath                string  // bound at /etc/resolv.conf, same rule
	ShmPath                       string  // the pod's /dev/shm; "" with host IPC (the host's is bound)
	InfraLess                     bool    // the pod has no pause process (and shares no PID namespace)
	IPCNSPath                     string  // pinned IPC namespace of an infra-less pod
	UTSNSPath                     string  // pinned UTS namespace of an infra-less pod
	UserNS                        *UserNS // the pod's own user namespace; nil: the node's
	CgroupParent                  string
}

// AppArmorDefaultProfile is the profile RuntimeDefault loads where AppArmor is enabled.
const AppArmorDefaultProfile = "keelson-default"

// ContainerSpec builds an application container's spec: the image's command and
// environment under the CRI config's overrides, in the pod's namespaces, with the
// pod's shared files, the CRI mounts and devices, the security context and the
// resources, in a cgroup under the pod's.
func ContainerSpec(ctx context.Context, in ContainerInput) (*specs.Spec, error) {
	cfg := in.Config
	if cfg == nil {
		return nil, fmt.Errorf("container %s has no config: %w", in.ID, errdefs.ErrInvalidArgument)
	}
	name := cfg.GetMetadata().GetName()
	lx := cfg.GetLinux()
	sc := lx.GetSecurityContext()
	privileged := sc.GetPrivileged()

	if privileged && !in.SandboxConfig.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("container %q is privileged but its pod sandbox is not (privileged containers need a privileged pod): %w", name, errdefs.ErrInvalidArgument)
	}

	args, err := containerArgs(cfg, in.Image)
	if err != nil {
		return nil, err
	}
	cwd, err := containerCwd(cfg, in.Image)
	if err != nil {
		return nil, err
	}
	nsOpts, err := containerNamespaces(sc.GetNamespaceOptions(), in.Sandbox, in.TargetPID, privileged)
	if err != nil {
		return nil, err
	}
	mountsOpt, err := containerMounts(in)
	if err != nil {
		return nil, err
	}
	usr, err := resolveUser(sc, in.Image.User, in.ReadImageFile)
	if err != nil {
		return nil, err
	}
	capsOpt, err := withCRICapabilities(sc.GetCapabilities())
	if err != nil {
		return nil, err
	}
	seccompProfile, err := containerSeccompProfile(sc)
	if err != nil {
		return nil, err
	}
	seccompOpt, err := withSeccomp(ctx, seccompProfile, privileged, in.ReadHostFile)
	if err != nil {
		return nil, err
	}
	apparmorOpt, err := containerAppArmor(sc, privileged, in.AppArmorEnabled)
	if err != nil {
		return nil, err
	}
	devOpts, err := containerDevices(cfg.GetDevices())
	if err != nil {
		return nil, err
	}

	opts := []oci.SpecOpts{
		oci.WithProcessArgs(args...),
		oci.WithProcessCwd(cwd),
		oci.WithDefaultPathEnv,
	}
	// TERM=xterm first, so that the image or the CRI config can still change it.
	if cfg.GetTty() {
		opts = append(opts, oci.WithTTY)
	}
	opts = append(opts, oci.WithEnv(containerEnv(cfg, in.Image, in.Sandbox, in.SandboxConfig)))
	opts = append(opts, nsOpts...)
	opts = append(opts, mountsOpt)

	// The default spec sets no_new_privs; CRI makes it opt-in (setuid binaries such
	// as ping or sudo must work unless the pod says otherwise).
	opts = append(opts, oci.WithNewPrivileges)
	if sc.GetNoNewPrivs() {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if sc.GetReadonlyRootfs() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	// kubelet sends its default masked and read-only paths; without them keep
	// containerd's (privileged clears both below).
	if p := sc.GetMaskedPaths(); len(p) > 0 {
		opts = append(opts, oci.WithMaskedPaths(p))
	}
	if p := sc.GetReadonlyPaths(); len(p) > 0 {
		opts = append(opts, oci.WithReadonlyPaths(p))
	}
	opts = append(opts, oci.WithUIDGID(usr.UID, usr.GID), withAdditionalGids(usr.AdditionalGids))
	if capsOpt != nil {
		opts = append(opts, capsOpt)
	}
	opts = append(opts, devOpts...)
	if privileged {
		hostDevices := in.HostDevices
		if hostDevices == nil {
			hostDevices = oci.HostDevices
		}
		devs, err := hostDevices()
		if err != nil {
			return nil, fmt.Errorf("listing host devices for privileged container %q: %w", name, err)
		}
		opts = append(opts, oci.WithPrivileged, oci.WithLinuxDevices(devs), oci.WithAllDevicesAllowed)
	}
	opts = append(opts, withoutAmbientCaps)
	// Seccomp's default profile depends on the capabilities: it comes after them.
	if seccompOpt != nil {
		opts = append(opts, seccompOpt)
	}
	if apparmorOpt != nil {
		opts = append(opts, apparmorOpt)
	}

	resOpts, err := containerResources(lx.GetResources(), in.PidsLimit)
	if err != nil {
		return nil, err
	}
	opts = append(opts, resOpts...)
	opts = append(opts, withCgroupsPath(in.CgroupDriver, in.Sandbox.CgroupParent, in.ID))
	opts = append(opts, oci.WithAnnotations(containerAnnotations(in)))

	spec, err := generate(ctx, in.ID, opts...)
	if err != nil {
		return nil, err
	}
	if !privileged { // privileged containers run with the policy's default label
		applySELinux(spec, in.SELinux)
	}
	// The UTS namespace is the sandbox's (or the host's): a hostname here would make
	// runc try to set it in a namespace it did not create.
	spec.Hostname = ""
	adj := ClampOOMScoreAdj(int(lx.GetResources().GetOomScoreAdj()), in.OwnOOM)
	spec.Process.OOMScoreAdj = &adj
	return spec, nil
}

// containerArgs follows Docker: a CRI command replaces the image's entrypoint (and
// drops its cmd), CRI args replace only the cmd.
func containerArgs(cfg *runtimeapi.ContainerConfig, img ocispec.ImageConfig) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		// An entrypoint of [""] is how a Dockerfile resets it.
		if len(img.Entrypoint) != 1 || img.Entrypoint[0] != "" {
			command = img.Entrypoint
		}
		if len(args) == 0 {
			args = img.Cmd
		}
	}
	all := append(append([]string{}, command...), args...)
	if len(all) == 0 {
		return nil, fmt.Errorf("container %q: no command specified (neither the CRI config nor the image has a command, args, entrypoint or cmd): %w", cfg.GetMetadata().GetName(), errdefs.ErrInvalidArgument)
	}
	return all, nil
}

func containerCwd(cfg *runtimeapi.ContainerConfig, img ocispec.ImageConfig) (string, error) {
	if wd := cfg.GetWorkingDir(); wd != "" {
		if !path.IsAbs(wd) {
			return "", fmt.Errorf("container %q: working_dir %q is not an absolute path: %w", cfg.GetMetadata().GetName(), wd, errdefs.ErrInvalidArgument)
		}
		return wd, nil
	}
	if img.WorkingDir != "" {
		// runc needs an absolute cwd; Docker reads a relative WORKDIR from "/".
		return path.Join("/", img.WorkingDir), nil
	}
	return "/", nil
}

// containerEnv is HOSTNAME, then the image's env, then the CRI envs, later ones
// replacing earlier ones with the same key.
func containerEnv(cfg *runtimeapi.ContainerConfig, img ocispec.ImageConfig, sb SandboxFacts, sbCfg *runtimeapi.PodSandboxConfig) []string {
	var env []string
	hostname := sb.Hostname
	if hostname == "" {
		hostname = sbCfg.GetHostname()
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if hostname != "" {
		env = append(env, "HOSTNAME="+hostname)
	}
	env = append(env, img.Env...)
	for _, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" {
			continue
		}
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	// oci.WithEnv only replaces keys already in the spec, not repeats within one
	// list: merge here, keeping each key at its first place with its last value.
	var out []string
	at := map[string]int{}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := at[k]; ok {
			out[i] = e
			continue
		}
		at[k] = len(out)
		out = append(out, e)
	}
	return out
}

// containerNamespaces joins the sandbox's network, IPC and UTS namespaces (or the
// host's, when the pod uses them) and picks the PID namespace the container asks for.
// A private cgroup namespace hides the host's cgroup tree on cgroup v2.
func containerNamespaces(ns *runtimeapi.NamespaceOption, sb SandboxFacts, targetPID uint32, privileged bool) ([]oci.SpecOpts, error) {
	if err := checkContainerUserNS(ns.GetUsernsOptions(), sb.UserNS); err != nil {
		return nil, err
	}
	var opts []oci.SpecOpts
	if sb.UserNS != nil {
		opts = append(opts, withUserNS(sb.UserNS))
	}
	needPid := false
	join := func(t specs.LinuxNamespaceType, p string) {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: t, Path: p}))
	}
	sandboxNS := func(kind string) string {
		needPid = true
		return fmt.Sprintf("/proc/%d/ns/%s", sb.Pid, kind)
	}

	// A pinned namespace path wins over the infra process's /proc entry (infra-less
	// pods have no such process).
	pinnedOr := func(path, kind string) string {
		if path != "" {
			return path
		}
		return sandboxNS(kind)
	}
	switch {
	case sb.HostNetwork:
		opts = append(opts, oci.WithHostNamespace(specs.NetworkNamespace), oci.WithHostNamespace(specs.UTSNamespace))
	default:
		join(specs.NetworkNamespace, pinnedOr(sb.NetNSPath, "net"))
		join(specs.UTSNamespace, pinnedOr(sb.UTSNSPath, "uts"))
	}
	if sb.HostIPC {
		opts = append(opts, oci.WithHostNamespace(specs.IPCNamespace))
	} else {
		join(specs.IPCNamespace, pinnedOr(sb.IPCNSPath, "ipc"))
	}

	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_POD:
		switch {
		case sb.HostPID:
			opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
		case sb.InfraLess:
			// A pod without a pause process does not share a PID namespace (that is
			// why it has none): the container gets its own.
		default:
			join(specs.PIDNamespace, sandboxNS("pid"))
		}
	case runtimeapi.NamespaceMode_CONTAINER:
		// The default spec's new PID namespace.
	case runtimeapi.NamespaceMode_NODE:
		opts = append(opts, oci.WithHostNamespace(specs.PIDNamespace))
	case runtimeapi.NamespaceMode_TARGET:
		if targetPID == 0 {
			return nil, fmt.Errorf("PID namespace mode TARGET (target_id %q) needs the target container's pid, and it is not known (is the target running?): %w", ns.GetTargetId(), errdefs.ErrInvalidArgument)
		}
		join(specs.PIDNamespace, fmt.Sprintf("/proc/%d/ns/pid", targetPID))
	default:
		return nil, fmt.Errorf("unknown PID namespace mode %v: %w", ns.GetPid(), errdefs.ErrInvalidArgument)
	}
	if needPid && sb.Pid == 0 {
		return nil, fmt.Errorf("sandbox %s has no infra process pid to join its namespaces (is the sandbox running?): %w", sb.ID, errdefs.ErrFailedPrecondition)
	}
	// Privileged containers keep the host's cgroup namespace (for tools managing
	// cgroups), as in containerd.
	if cgroupV2() && !privileged {
		join(specs.CgroupNamespace, "")
	}
	return opts, nil
}

// cgroupV2 tells whether /sys/fs/cgroup is the unified hierarchy. A variable for tests.
var cgroupV2 = cgroups.IsV2

// containerSeccompProfile reads the seccomp field, or the deprecated
// seccomp_profile_path ("runtime/default", "unconfined", "localhost/<path>") that
// older kubelets send.
func containerSeccompProfile(sc *runtimeapi.LinuxContainerSecurityContext) (*runtimeapi.SecurityProfile, error) {
	if sp := sc.GetSeccomp(); sp != nil {
		return sp, nil
	}
	return legacyProfile("seccomp_profile_path", sc.GetSeccompProfilePath())
}

func legacyProfile(field, v string) (*runtimeapi.SecurityProfile, error) {
	switch {
	case v == "":
		return nil, nil
	case v == "runtime/default" || v == "docker/default":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, nil
	case v == "unconfined":
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(v, "localhost/"):
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(v, "localhost/")}, nil
	}
	return nil, fmt.Errorf("%s %q is not runtime/default, unconfined or localhost/<profile>: %w", field, v, errdefs.ErrInvalidArgument)
}

// appArmorProfileLoaded tells whether the kernel has a profile of that name (a
// variable for tests).
var appArmorProfileLoaded = func(name string) (bool, error) {
	b, err := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "<name> (<mode>)"
		if i := strings.LastIndex(line, " ("); i > 0 && line[:i] == name {
			return true, nil
		}
	}
	return false, nil
}

// containerAppArmor applies the AppArmor choice. Where AppArmor is off, asking for
// the default or for none is satisfied as is; only a named profile cannot be.
func containerAppArmor(sc *runtimeapi.LinuxContainerSecurityContext, privileged, enabled bool) (oci.SpecOpts, error) {
	sp := sc.GetApparmor()
	if sp == nil {
		var err error
		if sp, err = legacyProfile("apparmor_profile", sc.GetApparmorProfile()); err != nil {
			return nil, err
		}
	}
	if sp == nil { // nothing asked: the default where AppArmor is on, as containerd does
		sp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	profile := strings.TrimPrefix(sp.GetLocalhostRef(), "localhost/")
	switch sp.GetProfileType() {
	case runtimeapi.SecurityProfile_Unconfined:
		return nil, nil
	case runtimeapi.SecurityProfile_RuntimeDefault:
		if !enabled || privileged {
			return nil, nil
		}
		return apparmor.WithDefaultProfile(AppArmorDefaultProfile), nil
	case runtimeapi.SecurityProfile_Localhost:
		if profile == "" {
			return nil, fmt.Errorf("AppArmor localhost profile has an empty name: %w", errdefs.ErrInvalidArgument)
		}
		if !enabled {
			return nil, fmt.Errorf("AppArmor profile %q was asked for, but AppArmor is not enabled on this host: %w", profile, errdefs.ErrFailedPrecondition)
		}
		if privileged {
			return nil, nil
		}
		if loaded, err := appArmorProfileLoaded(profile); err == nil && !loaded {
			return nil, fmt.Errorf("AppArmor profile %q is not loaded on this node (load it with apparmor_parser first): %w", profile, errdefs.ErrFailedPrecondition)
		}
		return apparmor.WithProfile(profile), nil
	}
	return nil, fmt.Errorf("unknown AppArmor profile type %v: %w", sp.GetProfileType(), errdefs.ErrInvalidArgument)
}

// containerDevices adds the CRI devices. A host_path that is a directory adds every
// device under it.
func containerDevices(devs []*runtimeapi.Device) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	for _, d := range devs {
		host, ctr, perms := d.GetHostPath(), d.GetContainerPath(), d.GetPermissions()
		if !path.IsAbs(host) {
			return nil, fmt.Errorf("device host_path %q is not an absolute path: %w", host, errdefs.ErrInvalidArgument)
		}
		if ctr != "" && !path.IsAbs(ctr) {
			return nil, fmt.Errorf("device %s: container_path %q is not an absolute path: %w", host, ctr, errdefs.ErrInvalidArgument)
		}
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, fmt.Errorf("device %s: permissions %q may only hold r, w and m: %w", host, perms, errdefs.ErrInvalidArgument)
		}
		add := oci.WithDevices(host, ctr, perms)
		opts = append(opts, func(ctx context.Context, c oci.Client, ctn *containers.Container, s *specs.Spec) error {
			if err := add(ctx, c, ctn, s); err != nil {
				return fmt.Errorf("device host_path %s: %v: %w", host, err, errdefs.ErrInvalidArgument)
			}
			return nil
		})
	}
	return opts, nil
}

// containerResources applies the CRI resources. Zero means unset for each field;
// swap is passed only when kubelet gives it, since kubelet already knows whether the
// node can limit swap.
func containerResources(r *runtimeapi.LinuxContainerResources, pidsLimit int64) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	if pidsLimit > 0 {
		opts = append(opts, oci.WithPidsLimit(pidsLimit))
	}
	if r == nil {
		return opts, nil
	}
	if r.GetCpuShares() < 0 || r.GetCpuPeriod() < 0 || r.GetMemoryLimitInBytes() < 0 || r.GetMemorySwapLimitInBytes() < 0 {
		return nil, fmt.Errorf("negative cpu_shares, cpu_period, memory_limit_in_bytes or memory_swap_limit_in_bytes in %v: %w", r, errdefs.ErrInvalidArgument)
	}
	switch period, quota := uint64(r.GetCpuPeriod()), r.GetCpuQuota(); {
	case quota != 0:
		if period == 0 {
			period = 100000 // the kernel's default CFS period
		}
		opts = append(opts, oci.WithCPUCFS(quota, period))
	case period != 0:
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
			ensureCPU(s).Period = &period
			return nil
		})
	}
	if v := r.GetCpuShares(); v != 0 {
		opts = append(opts, oci.WithCPUShares(uint64(v)))
	}
	if v := r.GetCpusetCpus(); v != "" {
		opts = append(opts, oci.WithCPUs(v))
	}
	if v := r.GetCpusetMems(); v != "" {
		opts = append(opts, oci.WithCPUsMems(v))
	}
	if v := r.GetMemoryLimitInBytes(); v != 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(v)))
	}
	if v := r.GetMemorySwapLimitInBytes(); v != 0 {
		opts = append(opts, oci.WithMemorySwap(v))
	}
	if hp := r.GetHugepageLimits(); len(hp) > 0 && hugetlbPresent() {
		// kubelet sends a limit (often 0) for every page size the node has; without
		// the hugetlb controller runc would fail on them, so they are skipped, as
		// containerd does by default.
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
			res := ensureResources(s)
			for _, l := range hp {
				res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: l.GetPageSize(), Limit: l.GetLimit()})
			}
			return nil
		})
	}
	if u := r.GetUnified(); len(u) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
			res := ensureResources(s)
			if res.Unified == nil {
				res.Unified = map[string]string{}
			}
			maps.Copy(res.Unified, u)
			return nil
		})
	}
	return opts, nil
}

// hugetlbPresent tells whether the hugetlb cgroup controller exists. A variable for tests.
var hugetlbPresent = sync.OnceValue(func() bool { return cgroups.HasController("hugetlb") })

func ensureResources(s *specs.Spec) *specs.LinuxResources {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	return s.Linux.Resources
}

func ensureCPU(s *specs.Spec) *specs.LinuxCPU {
	res := ensureResources(s)
	if res.CPU == nil {
		res.CPU = &specs.LinuxCPU{}
	}
	return res.CPU
}

// withAdditionalGids sets the groups runc passes to setgroups (after WithUIDGID,
// which resets them).
func withAdditionalGids(gids []uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Process.User.AdditionalGids = append([]uint32(nil), gids...)
		return nil
	}
}

// containerAnnotations are the CRI config's annotations under the identity ones,
// which a pod cannot override.
func containerAnnotations(in ContainerInput) map[string]string {
	a := maps.Clone(in.Config.GetAnnotations())
	if a == nil {
		a = map[string]string{}
	}
	maps.Copy(a, SandboxAnnotations(in.Sandbox.ID, in.SandboxConfig))
	a[AnnotationContainerType] = ContainerTypeContainer
	a[AnnotationContainerName] = in.Config.GetMetadata().GetName()
	a[AnnotationImageName] = in.ImageName
	return a
}
