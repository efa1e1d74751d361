package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Pin creates new namespaces of the given types (unix.CLONE_NEWIPC |
// unix.CLONE_NEWUTS ...) and bind-mounts each at paths[type]. inside runs in the new
// namespaces before they are pinned (to set a host name, write sysctls). On failure
// nothing is left at the paths. This is what lets a pod keep its namespaces without a
// pause process.
func Pin(paths map[int]string, inside func() error) (retErr error) {
	flags := 0
	for t := range paths {
		flags |= t
	}
	if err := mountPoints(paths); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			removeAll(paths)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		// The thread moves back to its own namespaces afterwards; if it cannot, it
		// stays locked and Go discards it rather than run other code in the pod's.
		runtime.LockOSThread()
		tid := unix.Gettid()
		origs := map[int]*os.File{}
		for t := range paths {
			f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, nsName(t)))
			if err != nil {
				errc <- err
				return
			}
			defer f.Close()
			origs[t] = f
		}
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if inside != nil {
				if err := inside(); err != nil {
					return err
				}
			}
			for t, p := range paths {
				src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, nsName(t))
				if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pinning namespace at %s: %w", p, err)
				}
			}
			return nil
		}()
		for t, f := range origs {
			if err := unix.Setns(int(f.Fd()), t); err != nil {
				return // stay locked: discarded
			}
		}
		runtime.UnlockOSThread()
	}()
	return <-errc
}

// mountPoints creates the empty files namespaces are pinned on; on failure it
// removes those it made.
func mountPoints(paths map[int]string) error {
	var made []string
	for _, p := range paths {
		err := os.MkdirAll(filepath.Dir(p), 0o711)
		if err == nil {
			var f *os.File
			if f, err = os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444); err == nil {
				f.Close()
				made = append(made, p)
				continue
			}
			err = fmt.Errorf("creating namespace mount point: %w", err)
		}
		for _, m := range made {
			_ = os.Remove(m)
		}
		return err
	}
	return nil
}

// removeAll unpins and removes every path (best effort: for rollbacks).
func removeAll(paths map[int]string) {
	for _, p := range paths {
		_ = Remove(p)
	}
}

// DoIn runs fn on a thread inside the namespace of type nstype pinned at path, and
// moves the thread back afterwards (or lets Go discard it).
func DoIn(path string, nstype int, fn func() error) error {
	return doIn(path, nstype, func() (bool, error) { return false, fn() })
}

// doIn is DoIn for an fn that may leave the thread unfit for other code (tainted):
// the thread then stays locked, and Go discards it.
func doIn(path string, nstype int, fn func() (tainted bool, err error)) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), nsName(nstype)))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), nstype); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering namespace %s: %w", path, err)
			return
		}
		tainted, ferr := fn()
		if err := unix.Setns(int(orig.Fd()), nstype); err == nil && !tainted {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// DoInAs is DoIn with the thread's effective uid set to euid while fn runs: a pod
// user namespace's IPC sysctls are writable by that namespace's root only (as the
// node sees it), not by the node's root.
func DoInAs(path string, nstype, euid int, fn func() error) error {
	return doIn(path, nstype, func() (bool, error) {
		// Raw: syscall.Setresuid would change every thread of the process.
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(euid), ^uintptr(0)); errno != 0 {
			return true, fmt.Errorf("setting the effective uid to %d: %w", euid, errno)
		}
		err := fn()
		// Back to root (which brings the effective capabilities back); a thread that
		// cannot is discarded.
		_, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0))
		return errno != 0, err
	})
}

func nsName(t int) string {
	switch t {
	case unix.CLONE_NEWNET:
		return "net"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWPID:
		return "pid"
	case unix.CLONE_NEWUSER:
		return "user"
	}
	return "mnt"
}
