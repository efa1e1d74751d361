package netns

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	p := filepath.Join(t.TempDir(), "ns", "pod1")
	if err := Create(p); err != nil {
		t.Fatal(err)
	}
	if !IsMounted(p) {
		t.Fatal("netns not mounted")
	}
	if err := Create(p); err == nil {
		t.Error("creating over an existing netns succeeded")
	}
	if !IsMounted(p) {
		t.Fatal("a failed second Create broke the first netns")
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("netns file left: %v", err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}

func TestPinIPCAndUTS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	paths := map[int]string{unix.CLONE_NEWIPC: filepath.Join(dir, "ipc"), unix.CLONE_NEWUTS: filepath.Join(dir, "uts")}
	if err := Pin(paths, func() error { return unix.Sethostname([]byte("pinned-pod")) }); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !IsMounted(p) {
			t.Errorf("%s not pinned", p)
		}
	}
	var name string
	if err := DoIn(paths[unix.CLONE_NEWUTS], unix.CLONE_NEWUTS, func() error {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		name = unix.ByteSliceToString(u.Nodename[:])
		return nil
	}); err != nil || name != "pinned-pod" {
		t.Errorf("host name in the pinned UTS namespace = %q, %v", name, err)
	}
	host, _ := os.Hostname()
	if host == "pinned-pod" {
		t.Errorf("the host's name changed")
	}
	for _, p := range paths {
		if err := Remove(p); err != nil {
			t.Error(err)
		}
	}
}

// A mount point that cannot be made takes back the ones made before it.
func TestMountPointsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	paths := map[int]string{1: filepath.Join(dir, "ns", "a"), 2: filepath.Join(dir, "ns", "b"), 3: filepath.Join(dir, "file", "c")}
	if err := mountPoints(paths); err == nil {
		t.Fatal("a mount point under a regular file was made")
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
}
