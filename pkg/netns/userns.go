package netns

import (
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/pkg/sys"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// PinInUserNS creates a user namespace with the given mappings (one range each) and,
// owned by it, new namespaces of the other types in paths (unix.CLONE_NEWNET,
// CLONE_NEWIPC, CLONE_NEWUTS); it pins each at its path, the user namespace at
// paths[unix.CLONE_NEWUSER]. Namespaces owned by the pod's user namespace are what
// let root inside the pod mount sysfs and mqueue and change its own sysctls. A
// short-lived child process holds them while they are pinned (a Go program cannot
// enter a new user namespace itself). On failure nothing is left at the paths.
func PinInUserNS(paths map[int]string, uid, gid specs.LinuxIDMapping) (retErr error) {
	if paths[unix.CLONE_NEWUSER] == "" {
		return fmt.Errorf("no path to pin the user namespace at")
	}
	var flags uintptr
	for t := range paths {
		if t != unix.CLONE_NEWUSER {
			flags |= uintptr(t)
		}
	}
	if err := mountPoints(paths); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			removeAll(paths)
		}
	}()
	mapping := func(m specs.LinuxIDMapping) string { return fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size) }
	return sys.UnshareAfterEnterUserns(mapping(uid), mapping(gid), flags, func(pid int) error {
		for t, p := range paths {
			src := fmt.Sprintf("/proc/%d/ns/%s", pid, nsName(t))
			if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pinning %s namespace at %s: %w", nsName(t), p, err)
			}
		}
		return nil
	})
}

// UserNSSupported says whether this kernel lets keelson make pod user namespaces
// (user namespaces enabled, pidfds for the helper process).
func UserNSSupported() error {
	b, err := os.ReadFile("/proc/sys/user/max_user_namespaces")
	if err != nil {
		return fmt.Errorf("user namespaces: %w", err)
	}
	if string(b) == "0\n" {
		return fmt.Errorf("user namespaces are disabled (user.max_user_namespaces = 0)")
	}
	if !sys.SupportsPidFD() {
		return fmt.Errorf("the kernel has no pidfd support (Linux 5.4+ is needed)")
	}
	return nil
}
