// Package netns creates and removes pod network namespaces pinned by a bind mount at
// a path keelson chooses, so the path can be recorded before the namespace exists
// and a crash at any point leaves something Remove can clean.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Create makes a new network namespace and bind-mounts it at path. The path must not
// exist yet. On failure nothing is left at path.
func Create(path string) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("creating netns mount point: %w", err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		// The namespace is made on a locked thread that is moved back to its own
		// namespace afterwards. If that fails the thread stays locked, so Go discards
		// it when this goroutine ends instead of running other code in the pod's
		// network namespace.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		mountErr := unix.Mount(src, path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		if mountErr != nil {
			errc <- fmt.Errorf("bind-mounting netns at %s: %w", path, mountErr)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// Remove unmounts and deletes the namespace pinned at path. Missing is success.
func Remove(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing netns %s: %w", path, err)
	}
	return nil
}

// IsMounted reports whether path holds a pinned network namespace.
func IsMounted(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// Do runs fn on an OS thread inside the network namespace at path. Sockets fn opens
// belong to that namespace and work from any thread afterwards.
func Do(path string, fn func() error) error { return DoIn(path, unix.CLONE_NEWNET, fn) }
