package mounts

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnderAndUnmount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "a", "b c")
	for _, d := range []string{a} {
		os.MkdirAll(d, 0o755)
	}
	if err := unix.Mount("tmpfs", a, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(b, 0o755)
	if err := unix.Mount("tmpfs", b, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	got := Under(dir)
	if len(got) != 2 || got[0] != b || got[1] != a {
		t.Fatalf("Under = %q", got)
	}
	UnmountUnder(dir)
	if got := Under(dir); len(got) != 0 {
		t.Errorf("still mounted: %q", got)
	}
}
