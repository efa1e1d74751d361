package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/oci"
)

// File names in a sandbox's directory; containers of the pod bind-mount them.
const (
	HostnameFile   = "hostname"
	HostsFile      = "hosts"
	ResolvConfFile = "resolv.conf"
)

// hostResolvConf and hostHosts are the node's files (variables for tests).
var (
	hostResolvConf = "/etc/resolv.conf"
	hostHosts      = "/etc/hosts"
)

// writeFiles writes hostname, hosts and resolv.conf for the pod into dir.
func writeFiles(dir string, cfg *runtimeapi.PodSandboxConfig, hostNet bool, ips []string, u *oci.UserNS) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hostname := cfg.GetHostname()
	if hostNet || hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		hostname = h
	}
	if err := os.WriteFile(filepath.Join(dir, HostnameFile), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts, err := hostsContent(hostNet, hostname, ips)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, HostsFile), hosts, 0o644); err != nil {
		return err
	}
	resolv, err := resolvConf(cfg.GetDnsConfig())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ResolvConfFile), resolv, 0o644); err != nil {
		return err
	}
	if u != nil {
		// Owned by the pod's root, as the node's root owns them for other pods.
		for _, f := range []string{HostnameFile, HostsFile, ResolvConfFile} {
			if err := os.Lchown(filepath.Join(dir, f), int(u.UID.HostID), int(u.GID.HostID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// hostsContent is the node's /etc/hosts for host-network pods; otherwise localhost
// entries and the pod's own name. (kubelet usually mounts its own /etc/hosts.)
func hostsContent(hostNet bool, hostname string, ips []string) ([]byte, error) {
	if hostNet {
		b, err := os.ReadFile(hostHosts)
		if errors.Is(err, os.ErrNotExist) {
			return []byte("127.0.0.1\tlocalhost\n"), nil
		}
		return b, err
	}
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return []byte(b.String()), nil
}

// resolvConf renders the pod's DNS config; with none, the node's resolv.conf.
func resolvConf(dns *runtimeapi.DNSConfig) ([]byte, error) {
	if dns == nil || (len(dns.Servers) == 0 && len(dns.Searches) == 0 && len(dns.Options) == 0) {
		b, err := os.ReadFile(hostResolvConf)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	var b strings.Builder
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Searches, " "))
	}
	for _, s := range dns.Servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	return []byte(b.String()), nil
}

// shmSize is the pod /dev/shm size, as Docker and containerd default it.
const shmSize = "65536k"

// mountShm mounts the pod's /dev/shm tmpfs at path.
func mountShm(path string, u *oci.UserNS) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	opts := "mode=1777,size=" + shmSize
	if u != nil { // owned by the pod's root
		opts += fmt.Sprintf(",uid=%d,gid=%d", u.UID.HostID, u.GID.HostID)
	}
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mounting /dev/shm tmpfs at %s: %w", path, err)
	}
	return nil
}

// unmountAll unmounts path (repeatedly, for stacked mounts) and ignores "not mounted".
func unmountAll(path string) error {
	for range 8 {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("unmounting %s: %w", path, err)
		}
	}
	return nil
}
