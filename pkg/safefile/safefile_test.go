package safefile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte("ok"), 0o644)
	if b, err := ReadFile(ctx, good, 10); err != nil || string(b) != "ok" {
		t.Fatalf("regular file: %q %v", b, err)
	}
	if _, err := ReadFile(ctx, good, 1); err == nil {
		t.Error("a file over the cap was read")
	}
	if _, err := ReadFile(ctx, filepath.Join(dir, "missing"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := ReadFile(ctx, fifo, 10); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO hung")
	}
	if _, err := ReadFile(ctx, "/dev/zero", MaxRead); err == nil {
		t.Error("/dev/zero was read")
	}
	if _, err := ReadFile(ctx, dir, 10); err == nil {
		t.Error("a directory was read")
	}
}

func TestReadInRoot(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\n"), 0o644)
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	// An absolute link resolves inside the root, where it names nothing.
	os.Symlink(outside, filepath.Join(root, "etc", "passwd"))
	if _, err := ReadInRoot(ctx, root, "/etc/passwd", 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("link out of the root: %v", err)
	}
	os.Symlink("../../../../../../etc/group", filepath.Join(root, "etc", "shadow"))
	if b, err := ReadInRoot(ctx, root, "/etc/shadow", 100); err != nil || string(b) != "root:x:0:\n" {
		t.Errorf("relative link clamped to the root: %q %v", b, err)
	}
	os.Symlink("/dev/zero", filepath.Join(root, "etc", "zero"))
	if err := syscall.Mknod(filepath.Join(root, "etc", "dev"), syscall.S_IFCHR|0o644, 1<<8|5); err == nil {
		if _, err := ReadInRoot(ctx, root, "/etc/dev", MaxRead); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("device node: %v", err)
		}
	}
}

func TestMkdirAllNoFollow(t *testing.T) {
	base := t.TempDir()
	d, err := MkdirAllNoFollow(filepath.Join(base, "a", "b"), 0o755)
	if err != nil {
		t.Fatal(err)
	}
	f, err := OpenAppend(d, "0.log", 0o640)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	f.Close()
	if b, _ := os.ReadFile(filepath.Join(base, "a", "b", "0.log")); string(b) != "x" {
		t.Errorf("log = %q", b)
	}
	target := t.TempDir()
	os.Symlink(target, filepath.Join(base, "link"))
	if _, err := MkdirAllNoFollow(filepath.Join(base, "link", "c"), 0o755); !errors.Is(err, ErrSymlink) {
		t.Errorf("through a link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "c")); err == nil {
		t.Error("a directory was made through the link")
	}
	d, _ = MkdirAllNoFollow(filepath.Join(base, "a"), 0o755)
	defer d.Close()
	os.Symlink("/etc/passwd", filepath.Join(base, "a", "evil.log"))
	if _, err := OpenAppend(d, "evil.log", 0o640); err == nil {
		t.Error("a link at the log file was followed")
	}
}
