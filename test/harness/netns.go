package harness

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InNamespace runs fn on a thread that joined the namespace at nsPath (e.g.
// /proc/<pid>/ns/uts or a pinned netns) of type nstype (unix.CLONE_NEWNET...).
func InNamespace(nsPath string, nstype int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to its own namespace afterwards; if it cannot, it stays
		// locked and Go discards it (a locked goroutine's thread dies with it, except
		// the main thread — which is why the way back matters).
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), nsName(nstype)))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		f, err := os.Open(nsPath)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), nstype); err != nil {
			errc <- fmt.Errorf("setns %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), nstype); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// ListenInNetNS opens a TCP listener inside the network namespace at nsPath and
// answers every connection with reply. It is closed when the test ends.
func ListenInNetNS(t testing.TB, nsPath, addr, reply string) net.Listener {
	t.Helper()
	var l net.Listener
	err := InNamespace(nsPath, unix.CLONE_NEWNET, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", nsPath, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l
}

// Hostname returns the UTS host name seen by process pid.
func Hostname(pid int) (string, error) {
	var name string
	err := InNamespace(fmt.Sprintf("/proc/%d/ns/uts", pid), unix.CLONE_NEWUTS, func() error {
		var err error
		name, err = os.Hostname()
		return err
	})
	return name, err
}

func nsName(nstype int) string {
	switch nstype {
	case unix.CLONE_NEWNET:
		return "net"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWPID:
		return "pid"
	}
	return "mnt"
}
