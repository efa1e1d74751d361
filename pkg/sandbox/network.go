package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/validate"
)

// delRetries are the waits before each CNI DEL attempt of a teardown.
var delRetries = []time.Duration{0, 500 * time.Millisecond, 2 * time.Second}

// teardownNetwork runs CNI DEL for the sandbox. A DEL that keeps failing (a cached
// config that can never parse, a plugin that always errors on this input) must not
// make the pod impossible to remove: after the retries keelson releases by hand what
// it knows the plugins took — the IP reservation, the tagged iptables rules, the
// cached result; the veth goes with the netns at removal — and logs what is left.
// Only a cancelled call fails.
func (s *Service) teardownNetwork(ctx context.Context, sb *Sandbox) error {
	pod := s.cniPod(sb)
	var err error
	for _, wait := range delRetries {
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		if err = s.network.Detach(ctx, pod); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
	}
	klog.ErrorS(err, "CNI DEL keeps failing; releasing the pod's network without it", "podSandboxID", sb.ID, "attempts", len(delRetries))
	if left := s.network.Release(ctx, pod); len(left) > 0 {
		klog.ErrorS(errors.New(strings.Join(left, "; ")), "Pod network only partly released (keelson doctor lists it)", "podSandboxID", sb.ID)
	}
	return nil
}

// GCNetwork runs CNI garbage collection for the attachments of sandboxes that no
// longer exist. Creations in flight count as existing: their pending records are read
// before the sandbox list, and a sandbox is listed before its record goes.
func (s *Service) GCNetwork(ctx context.Context) {
	valid := map[string]bool{}
	for _, id := range s.network.Pending() {
		valid[id] = true
	}
	for _, sb := range s.store.List() {
		valid[sb.ID] = true
	}
	s.network.GC(ctx, valid)
}

// checkLogDirectory refuses a pod log directory reached through a symbolic link:
// container logs are written there by a root process, which must not be led to
// write elsewhere. A directory that does not exist yet is fine (kubelet makes it;
// keelson makes it otherwise, refusing links again).
func checkLogDirectory(dir string) error {
	if dir == "" {
		return nil
	}
	p := "/"
	for _, e := range strings.Split(filepath.Clean(dir), "/") {
		if e == "" {
			continue
		}
		p = filepath.Join(p, e)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("config.log_directory %q: %v: %w", dir, err, validate.ErrInvalid)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("config.log_directory %q goes through the symbolic link %s: %w", dir, p, validate.ErrInvalid)
		}
		if !fi.IsDir() {
			return fmt.Errorf("config.log_directory %q: %s is not a directory: %w", dir, p, validate.ErrInvalid)
		}
	}
	return nil
}
