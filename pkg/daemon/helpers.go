package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/netns"
	"github.com/keelson/keelson/pkg/runtime"
)

// loggerBinary finds keelson-logger: the configured path, else next to keelson.
func loggerBinary(configured string) (string, error) {
	p := configured
	if p == "" {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		p = filepath.Join(filepath.Dir(self), "keelson-logger")
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("keelson-logger not found at %s (make build puts it next to keelson; or set runtime.logger_binary): %w", p, err)
	}
	return p, nil
}

var majorMinorRE = regexp.MustCompile(`^v?(\d+)\.(\d+)`)

// versionAtLeast reports whether a version string like "2.4.2+unknown" or
// "1.6.20~ds1" is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	m := majorMinorRE.FindStringSubmatch(v)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || (ma == major && mi >= minor)
}

// probeHandlers asks each runc-type handler's binary what it supports.
func probeHandlers(cfg config.Config) map[string]runtime.HandlerFeatures {
	out := map[string]runtime.HandlerFeatures{}
	for name, h := range cfg.Runtime.Handlers {
		if h.RuntimeType == config.DefaultRuntimeType {
			out[name] = runtime.ProbeHandler(h.BinaryName)
		}
	}
	return out
}

// userNamespaceSupport says, per runtime handler, whether pods with their own user
// namespace can run: the kernel lets keelson make one, the snapshotter gives
// id-mapped image layers (containerd 2.x overlayfs on a kernel with id-mapped
// overlay mounts), and the handler's binary does id-mapped mounts.
func userNamespaceSupport(ctx context.Context, conn *runtime.Conn, snapshotter, stateDir string, features map[string]runtime.HandlerFeatures) map[string]error {
	out := map[string]error{}
	common := netns.UserNSSupported()
	if common == nil && stateDir != "" {
		common = searchable(stateDir)
	}
	if common == nil {
		caps, err := conn.Client.GetSnapshotterCapabilities(ctx, snapshotter)
		switch {
		case err != nil:
			common = fmt.Errorf("asking snapshotter %s for its capabilities: %w", snapshotter, err)
		case !slices.Contains(caps, "remap-ids"):
			common = fmt.Errorf("snapshotter %s cannot id-map image layers here (containerd %s; containerd 2.0+ with overlayfs on Linux 5.19+ can)", snapshotter, conn.Version())
		}
	}
	for name, f := range features {
		switch {
		case common != nil:
			out[name] = common
		case !f.UserNamespaces:
			out[name] = errors.New("its OCI runtime does not report user namespaces with id-mapped mounts (runc 1.2+ does)")
		default:
			out[name] = nil
		}
	}
	for name, err := range out {
		klog.InfoS("Pod user namespaces", "handler", name, "supported", err == nil, "reason", err)
	}
	return out
}

// cniOptions locates the CNI config, plugins and keelson's attachment records.
func cniOptions(cfg config.Config) cni.Options {
	return cni.Options{
		ConfDir:      cfg.CNI.ConfDir,
		BinDirs:      cfg.CNI.BinDirs,
		CacheDir:     cfg.CNI.CacheDir,
		PodCIDRFile:  filepath.Join(cfg.RootDir, "pod-cidr"),
		PendingDir:   filepath.Join(cfg.RootDir, "cni", "pending"),
		ConfTemplate: cfg.CNI.ConfTemplate,
	}
}

// every runs fn every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// searchable checks that other users may pass through dir and its parents: the root
// of a pod with its own user namespace is another host user, and its containers'
// root filesystems are mounted below the supervised containerd's state dir.
func searchable(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil && st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s (mode %o) is not searchable by other users, and the root of a pod with its own user namespace is one; chmod o+x it", d, st.Mode().Perm())
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// supported: the handler is listed with no reason against it.
func supported(m map[string]error, name string) bool {
	err, ok := m[name]
	return ok && err == nil
}

// criuDirs are where runc, run by the supervised containerd's shims, finds criu
// before the rest of PATH: the containerd binary's directory.
func criuDirs(cfg config.Config) []string {
	if cfg.Containerd.Address != "" || cfg.Containerd.Binary == "" {
		return nil
	}
	return []string{filepath.Dir(cfg.Containerd.Binary)}
}
