package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/validate"
)

// pinNamespaces makes an infra-less pod's IPC and UTS namespaces (unless it uses the
// host's), sets its host name and IPC sysctls inside them, and pins them.
func (s *Service) pinNamespaces(sb *Sandbox) error {
	hostname, sysctls := sb.Config.GetHostname(), sb.Config.GetLinux().GetSysctls()
	setHostname := func() error {
		if hostname == "" {
			return nil
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("setting the pod's host name %q: %w", hostname, err)
		}
		return nil
	}
	if sb.UserNSPath != "" {
		// pinUserNS made them, owned by the pod's user namespace (which rules out
		// the host's IPC and UTS namespaces).
		if err := netns.DoIn(sb.UTSNSPath, unix.CLONE_NEWUTS, setHostname); err != nil {
			return err
		}
		return netns.DoInAs(sb.IPCNSPath, unix.CLONE_NEWIPC, int(sb.UserNS().UID.HostID), func() error { return writeSysctls(sysctls, "ipc") })
	}
	paths := map[int]string{}
	if !sb.HostIPC() {
		sb.IPCNSPath = s.pinPath(sb.ID, "ipc")
		paths[unix.CLONE_NEWIPC] = sb.IPCNSPath
	}
	if !sb.HostNetwork() {
		sb.UTSNSPath = s.pinPath(sb.ID, "uts")
		paths[unix.CLONE_NEWUTS] = sb.UTSNSPath
	}
	if len(paths) == 0 {
		return nil
	}
	return netns.Pin(paths, func() error {
		if sb.UTSNSPath != "" {
			if err := setHostname(); err != nil {
				return err
			}
		}
		if sb.IPCNSPath != "" {
			return writeSysctls(sysctls, "ipc")
		}
		return nil
	})
}

// pinPath is where a pod's namespace of a kind ("ipc", "uts", "user") is pinned.
func (s *Service) pinPath(id, kind string) string {
	return filepath.Join(s.stateDir(id), "ns", kind)
}

// unpin removes the IPC, UTS and user namespaces keelson pinned for the pod and its
// /dev/shm.
func (s *Service) unpin(sb *Sandbox) error {
	var errs []error
	for _, p := range []string{sb.IPCNSPath, sb.UTSNSPath, sb.UserNSPath} {
		if p != "" {
			errs = append(errs, netns.Remove(p))
		}
	}
	if sb.ShmPath != "" {
		errs = append(errs, unmountAll(sb.ShmPath))
	}
	return errors.Join(errs...)
}

// applySysctls writes the pod's sysctls of one namespace kind ("net", "ipc") into
// the namespace of type nstype pinned at path.
func applySysctls(path string, nstype int, sysctls map[string]string, kind string) error {
	if len(sysctls) == 0 {
		return nil
	}
	return netns.DoIn(path, nstype, func() error { return writeSysctls(sysctls, kind) })
}

// writeSysctls writes the sysctls of one namespace kind through /proc/sys, which
// shows the namespaces of the calling thread. Names were validated (no "..").
func writeSysctls(sysctls map[string]string, kind string) error {
	for k, v := range sysctls {
		if validate.SysctlNamespace(k) != kind {
			continue
		}
		// In the dotted form '/' stands for a '.' inside a component (eth0.100).
		rel := strings.Map(func(r rune) rune {
			switch r {
			case '.':
				return '/'
			case '/':
				return '.'
			}
			return r
		}, validate.NormalizeSysctl(k))
		p := filepath.Join("/proc/sys", rel)
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %v: %w", k, v, err, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
