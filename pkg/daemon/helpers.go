package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
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

// cniOptions locates the CNI config, plugins and keelson's attachment records.
func cniOptions(cfg config.Config) cni.Options {
	return cni.Options{
		ConfDir:     cfg.CNI.ConfDir,
		BinDirs:     cfg.CNI.BinDirs,
		CacheDir:    cfg.CNI.CacheDir,
		PodCIDRFile: filepath.Join(cfg.RootDir, "pod-cidr"),
		PendingDir:  filepath.Join(cfg.RootDir, "cni", "pending"),
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
