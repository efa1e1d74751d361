package runtime

import (
	"encoding/json"
	"os/exec"
	"slices"
	"sync"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/config"
)

// HandlerFeatures are what one OCI runtime binary (with this kernel) can do.
type HandlerFeatures struct {
	RecursiveReadOnlyMounts bool
	// UserNamespaces: the binary makes user namespaces and id-mapped mounts.
	UserNamespaces bool
}

// ProbeHandler asks an OCI runtime binary for its features (`<binary> features`, the
// OCI runtime features document). A binary that cannot say reports none.
func ProbeHandler(binary string) HandlerFeatures {
	if binary == "" {
		binary = "runc"
	}
	out, err := exec.Command(binary, "features").Output()
	if err != nil {
		klog.V(2).InfoS("OCI runtime does not report features", "binary", binary, "err", err)
		return HandlerFeatures{}
	}
	var doc struct {
		MountOptions []string `json:"mountOptions"`
		Linux        struct {
			Namespaces      []string `json:"namespaces"`
			MountExtensions struct {
				IDMap struct {
					Enabled *bool `json:"enabled"`
				} `json:"idmap"`
			} `json:"mountExtensions"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return HandlerFeatures{}
	}
	return HandlerFeatures{
		RecursiveReadOnlyMounts: slices.Contains(doc.MountOptions, "rro") && kernelHasMountSetattr(),
		UserNamespaces: slices.Contains(doc.Linux.Namespaces, "user") && doc.Linux.MountExtensions.IDMap.Enabled != nil &&
			*doc.Linux.MountExtensions.IDMap.Enabled,
	}
}

// kernelHasMountSetattr: recursive read-only mounts need mount_setattr (Linux 5.12).
var kernelHasMountSetattr = sync.OnceValue(func() bool {
	// Probing with invalid arguments: ENOSYS means the call does not exist.
	_, _, errno := unix.Syscall6(unix.SYS_MOUNT_SETATTR, ^uintptr(0), 0, 0, 0, 0, 0)
	return errno != unix.ENOSYS
})

// HandlerOptions are the containerd runtime options of a runtime handler: for the
// runc shim, the runc binary, its state root and whether runc uses the systemd
// cgroup driver; nil for other shims (their own config applies).
func HandlerOptions(h config.RuntimeHandler, systemdCgroup bool) any {
	if h.RuntimeType != config.DefaultRuntimeType {
		return nil
	}
	return &runcoptions.Options{BinaryName: h.BinaryName, Root: h.Root, SystemdCgroup: systemdCgroup}
}
