package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container paths of the files a pod's containers share from the sandbox.
const (
	etcHostname = "/etc/hostname"
	etcHosts    = "/etc/hosts"
	resolvConf  = "/etc/resolv.conf"
	devShm      = "/dev/shm"
)

// cgroupMount gives the container a read-only view of its cgroup: the default spec has
// none, and tools inside containers (JVMs, Go's GOMAXPROCS) read their limits there.
var cgroupMount = specs.Mount{
	Destination: "/sys/fs/cgroup",
	Type:        "cgroup",
	Source:      "cgroup",
	Options:     []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
}

// bindOptions are the per-mount options a CRI mount may add; anything else (bind,
// propagation, ro/rw) is decided from the mount's own fields.
var bindOptions = map[string]bool{
	"nosuid": true, "suid": true, "nodev": true, "dev": true, "noexec": true, "exec": true,
	"noatime": true, "atime": true, "nodiratime": true, "diratime": true,
	"relatime": true, "norelatime": true, "strictatime": true, "nostrictatime": true,
}

// containerMounts is the spec option that lays out a container's mounts: containerd's
// defaults (less /run, plus a cgroup mount), the sandbox's shared files, then the CRI
// mounts, each replacing any earlier mount at the same place, sorted so that a parent
// is mounted before what is mounted inside it.
func containerMounts(in ContainerInput) (oci.SpecOpts, error) {
	cfg := in.Config
	criMounts, rootPropagation, err := criBindMounts(cfg.GetMounts(), in.RecursiveReadOnlySupported, in.MountPropagation, in.Sandbox.UserNS != nil)
	if err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	for _, m := range criMounts {
		taken[m.Destination] = true
	}
	readonly := cfg.GetLinux().GetSecurityContext().GetReadonlyRootfs()
	var sandboxMounts []specs.Mount
	addFile := func(dst, src string, ro bool) {
		if src == "" || taken[dst] {
			return
		}
		opts := []string{"rbind", "rprivate", "rw"}
		if ro {
			opts[2] = "ro"
		}
		sandboxMounts = append(sandboxMounts, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts})
	}
	sb := in.Sandbox
	// These files follow the root's read-only flag, as in containerd: a read-only
	// container should not rewrite the pod's resolv.conf for its siblings.
	addFile(etcHostname, sb.HostnamePath, readonly)
	addFile(etcHosts, sb.HostsPath, readonly)
	addFile(resolvConf, sb.ResolvConfPath, readonly)
	shm := sb.ShmPath
	if sb.HostIPC {
		shm = devShm
	}
	addFile(devShm, shm, false)

	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		added := slices.Concat(sandboxMounts, criMounts)
		replaced := map[string]bool{}
		for _, m := range added {
			replaced[m.Destination] = true
		}
		var mounts []specs.Mount
		for _, m := range append(s.Mounts, cgroupMount) {
			dst := path.Clean(m.Destination)
			if dst == "/run" || replaced[dst] {
				continue
			}
			// A CRI /dev replaces the whole default /dev tree, as in containerd.
			if taken["/dev"] && strings.HasPrefix(dst, "/dev/") {
				continue
			}
			m.Options = slices.Clone(m.Options)
			mounts = append(mounts, m)
		}
		mounts = append(mounts, added...)
		sort.SliceStable(mounts, func(i, j int) bool {
			return mountDepth(mounts[i].Destination) < mountDepth(mounts[j].Destination)
		})
		s.Mounts = mounts
		if rootPropagation != "" {
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			s.Linux.RootfsPropagation = rootPropagation
		}
		return nil
	}, nil
}

func mountDepth(p string) int {
	p = path.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// criBindMounts validates the CRI mounts and turns them into bind mounts. It returns
// the rootfs propagation they need: a slave or shared mount inside a private root
// would never see the events it was asked for.
func criBindMounts(ms []*runtimeapi.Mount, rroSupported bool, propagation func(string) (bool, bool, error), userns bool) ([]specs.Mount, string, error) {
	if propagation == nil {
		propagation = HostMountPropagation
	}
	var (
		out      []specs.Mount
		rootProp string
		seen     = map[string]bool{}
	)
	for _, m := range ms {
		if m.GetImage() != nil && m.GetImage().GetImage() != "" {
			return nil, "", fmt.Errorf("mount at %q: image volumes (mount.image %q) are not supported yet: %w", m.GetContainerPath(), m.GetImage().GetImage(), errdefs.ErrNotImplemented)
		}
		if err := checkMountMappings(m, userns); err != nil {
			return nil, "", err
		}
		dst, err := checkMountPath("container_path", m.GetContainerPath(), true)
		if err != nil {
			return nil, "", err
		}
		if dst == "/" {
			return nil, "", fmt.Errorf("mount container_path %q would hide the container's root filesystem: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		src, err := checkMountPath("host_path", m.GetHostPath(), false)
		if err != nil {
			return nil, "", fmt.Errorf("mount at %q: %w", dst, err)
		}
		if seen[dst] {
			return nil, "", fmt.Errorf("two mounts have container_path %q: %w", dst, errdefs.ErrInvalidArgument)
		}
		seen[dst] = true

		opts := []string{"rbind"}
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
			opts = append(opts, "rprivate")
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			shared, slave, err := propagation(src)
			if err != nil {
				return nil, "", fmt.Errorf("mount %q -> %q: finding the propagation of the host mount holding host_path: %v: %w", src, dst, err, errdefs.ErrFailedPrecondition)
			}
			if !shared && !slave {
				return nil, "", fmt.Errorf("mount %q -> %q asks for HOST_TO_CONTAINER propagation, but the host mount holding %s is private: it must be shared or slave (e.g. `mount --make-rshared /` on the host, as systemd does by default): %w", src, dst, src, errdefs.ErrFailedPrecondition)
			}
			opts = append(opts, "rslave")
			if rootProp != "rshared" {
				rootProp = "rslave"
			}
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			shared, _, err := propagation(src)
			if err != nil {
				return nil, "", fmt.Errorf("mount %q -> %q: finding the propagation of the host mount holding host_path: %v: %w", src, dst, err, errdefs.ErrFailedPrecondition)
			}
			if !shared {
				return nil, "", fmt.Errorf("mount %q -> %q asks for BIDIRECTIONAL propagation, but the host mount holding %s is not shared (e.g. `mount --make-rshared` it on the host): %w", src, dst, src, errdefs.ErrFailedPrecondition)
			}
			opts = append(opts, "rshared")
			rootProp = "rshared"
		default:
			return nil, "", fmt.Errorf("mount %q -> %q: unknown propagation %v: %w", src, dst, m.GetPropagation(), errdefs.ErrInvalidArgument)
		}

		switch {
		case m.GetRecursiveReadOnly():
			if !m.GetReadonly() {
				return nil, "", fmt.Errorf("mount %q -> %q: recursive_read_only needs readonly=true: %w", src, dst, errdefs.ErrInvalidArgument)
			}
			if m.GetPropagation() != runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
				return nil, "", fmt.Errorf("mount %q -> %q: recursive_read_only needs PRIVATE propagation, not %v (a propagated submount could not be kept read-only): %w", src, dst, m.GetPropagation(), errdefs.ErrInvalidArgument)
			}
			if !rroSupported {
				return nil, "", fmt.Errorf("mount %q -> %q: recursive read-only mounts are not supported by this runtime or kernel (they need Linux 5.12+ mount_setattr): %w", src, dst, errdefs.ErrFailedPrecondition)
			}
			opts = append(opts, "rro")
		case m.GetReadonly():
			opts = append(opts, "ro")
		default:
			opts = append(opts, "rw")
		}
		for _, o := range m.GetMountOptions() {
			if !bindOptions[o] {
				return nil, "", fmt.Errorf("mount %q -> %q: mount option %q is not allowed (allowed: nosuid, nodev, noexec and atime options): %w", src, dst, o, errdefs.ErrInvalidArgument)
			}
			opts = append(opts, o)
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: opts,
			UIDMappings: idMappings(m.GetUidMappings()), GIDMappings: idMappings(m.GetGidMappings())})
	}
	return out, rootProp, nil
}

// checkMountMappings checks a mount's ID mappings (kubelet sets the pod's on every
// mount of a pod with its own user namespace, for an id-mapped bind mount).
func checkMountMappings(m *runtimeapi.Mount, userns bool) error {
	uids, gids := m.GetUidMappings(), m.GetGidMappings()
	if len(uids) == 0 && len(gids) == 0 {
		return nil
	}
	if !userns {
		return fmt.Errorf("mount at %q: uid_mappings/gid_mappings (an id-mapped mount) need a pod with its own user namespace: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
	}
	if len(uids) == 0 || len(gids) == 0 {
		return fmt.Errorf("mount at %q: an id-mapped mount needs both uid_mappings and gid_mappings: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
	}
	for _, id := range append(slices.Clone(uids), gids...) {
		if id.GetLength() == 0 || uint64(id.GetHostId())+uint64(id.GetLength()) > 1<<32-1 || uint64(id.GetContainerId())+uint64(id.GetLength()) > 1<<32-1 {
			return fmt.Errorf("mount at %q: ID mapping %d:%d:%d is empty or goes past the largest ID: %w", m.GetContainerPath(), id.GetContainerId(), id.GetHostId(), id.GetLength(), errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// checkMountPath requires an absolute path without ".." elements and returns it
// cleaned (a trailing slash from a pod's mountPath is harmless).
func checkMountPath(field, p string, dotDot bool) (string, error) {
	if p == "" {
		return "", fmt.Errorf("mount %s is empty: %w", field, errdefs.ErrInvalidArgument)
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("mount %s %q is not an absolute path: %w", field, p, errdefs.ErrInvalidArgument)
	}
	if !dotDot && slices.Contains(strings.Split(p, "/"), "..") {
		return "", fmt.Errorf("mount %s %q has a \"..\" element: %w", field, p, errdefs.ErrInvalidArgument)
	}
	return path.Clean(p), nil
}

// HostMountPropagation tells whether the host mount holding hostPath is shared or a
// slave, from /proc/self/mountinfo. hostPath's symlinks are followed first, as the
// bind mount will follow them; a path that does not exist yet is judged by its
// nearest existing parent.
func HostMountPropagation(hostPath string) (shared, slave bool, err error) {
	p, err := resolveExisting(hostPath)
	if err != nil {
		return false, false, err
	}
	infos, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !isUnder(p, m.Mountpoint), false
	})
	if err != nil {
		return false, false, err
	}
	var best *mountinfo.Info
	for _, m := range infos {
		// The deepest mount point wins; of two at the same place the later is on top.
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return false, false, fmt.Errorf("no mount holds %s", p)
	}
	shared, slave = propagationOf(best.Optional)
	return shared, slave, nil
}

// propagationOf reads mountinfo's optional fields ("shared:1 master:2").
func propagationOf(optional string) (shared, slave bool) {
	for _, f := range strings.Fields(optional) {
		switch {
		case strings.HasPrefix(f, "shared:"):
			shared = true
		case strings.HasPrefix(f, "master:"):
			slave = true
		}
	}
	return shared, slave
}

func isUnder(p, mountpoint string) bool {
	return mountpoint == "/" || p == mountpoint || strings.HasPrefix(p, mountpoint+"/")
}

func resolveExisting(p string) (string, error) {
	p = filepath.Clean(p)
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		p = parent
	}
}
