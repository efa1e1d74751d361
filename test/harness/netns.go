package harness

import (
	"fmt"
	"github.com/keelson/keelson/pkg/netns"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// InNamespace runs fn on a thread that joined the namespace at nsPath (e.g.
// /proc/<pid>/ns/uts or a pinned netns) of type nstype (unix.CLONE_NEWNET...).
func InNamespace(nsPath string, nstype int, fn func() error) error {
	return netns.DoIn(nsPath, nstype, fn)
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
