package integration

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/test/harness"
)

// listenerFile makes a unix listening socket at path, as systemd does for
// keelson.socket, and returns it as a file to hand over.
func listenerFile(t *testing.T, path string) *os.File {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	t.Cleanup(func() { f.Close(); os.Remove(path) })
	return f
}

// Socket activation: keelson serves CRI on the socket it is handed (LISTEN_FDS),
// keeps the variables from its containerd, and leaves the socket file, which is
// systemd's, when it stops. A handed-over socket that is not grpc.socket is refused.
func TestSocketActivation(t *testing.T) {
	harness.RequireRoot(t)
	k := harness.Prepare(t, harness.Options{})
	k.Start(harness.Options{ActivationSocket: listenerFile(t, k.Socket)})
	if !strings.Contains(k.Log(), "socket activation") {
		t.Error("keelson did not say it serves the socket it was handed")
	}
	for _, pid := range k.ContainerdPids() {
		env, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if strings.Contains(string(env), "LISTEN_FDS") {
			t.Errorf("containerd (pid %d) inherited LISTEN_FDS", pid)
		}
	}
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(k.Socket); err != nil {
		t.Errorf("the handed-over socket file went with keelson: %v", err)
	}

	other := filepath.Join(k.Dir, "other.sock")
	if err := k.StartNoWait(harness.Options{ActivationSocket: listenerFile(t, other)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-k.Exited():
	case <-time.After(2 * time.Minute):
		t.Fatal("keelson started on a handed-over socket that is not grpc.socket")
	}
	if log := k.Log(); !strings.Contains(log, "socket activation passed") || !strings.Contains(log, other) {
		t.Errorf("the refusal does not name the socket it was handed:\n%s", log)
	}
}
