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
	paths := map[int]string{}
	if !sb.HostIPC() {
		sb.IPCNSPath = filepath.Join(s.stateDir(sb.ID), "ns", "ipc")
		paths[unix.CLONE_NEWIPC] = sb.IPCNSPath
	}
	if !sb.HostNetwork() {
		sb.UTSNSPath = filepath.Join(s.stateDir(sb.ID), "ns", "uts")
		paths[unix.CLONE_NEWUTS] = sb.UTSNSPath
	}
	if len(paths) == 0 {
		return nil
	}
	sysctls := sb.Config.GetLinux().GetSysctls()
	return netns.Pin(paths, func() error {
		if sb.UTSNSPath != "" {
			if h := sb.Config.GetHostname(); h != "" {
				if err := unix.Sethostname([]byte(h)); err != nil {
					return fmt.Errorf("setting the pod's host name %q: %w", h, err)
				}
			}
		}
		if sb.IPCNSPath != "" {
			return writeSysctls(sysctls, "ipc")
		}
		return nil
	})
}

// unpin removes an infra-less pod's pinned IPC and UTS namespaces and its /dev/shm.
func (s *Service) unpin(sb *Sandbox) error {
	var errs []error
	for _, p := range []string{sb.IPCNSPath, sb.UTSNSPath} {
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
