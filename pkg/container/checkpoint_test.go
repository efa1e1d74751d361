package container

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func tarOf(t *testing.T, hs ...tar.Header) *bytes.Buffer {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hs {
		h.Size = int64(len(h.Linkname))
		if h.Typeflag == tar.TypeReg {
			h.Size = 2
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte("ok"))
		}
	}
	tw.Close()
	return &b
}

// untar takes regular files and directories only, inside its directory.
func TestUntar(t *testing.T) {
	dir := t.TempDir()
	if err := untar(tarOf(t, tar.Header{Name: "checkpoint/", Typeflag: tar.TypeDir}, tar.Header{Name: "checkpoint/inventory.img", Typeflag: tar.TypeReg}, tar.Header{Name: "./spec.dump", Typeflag: tar.TypeReg}), dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"checkpoint/inventory.img", "spec.dump"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err != nil || string(b) != "ok" {
			t.Errorf("%s: %q %v", f, b, err)
		}
	}
	for name, h := range map[string]tar.Header{
		"dot-dot":  {Name: "../escape", Typeflag: tar.TypeReg},
		"absolute": {Name: "/etc/escape", Typeflag: tar.TypeReg},
		"symlink":  {Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		"hardlink": {Name: "hard", Typeflag: tar.TypeLink, Linkname: "spec.dump"},
		"device":   {Name: "dev", Typeflag: tar.TypeChar},
	} {
		if err := untar(tarOf(t, h), t.TempDir()); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
}

// writeTar and untar round-trip a checkpoint directory.
func TestWriteTarRoundTrip(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "checkpoint"), 0o700)
	os.WriteFile(filepath.Join(src, "checkpoint", "pages-1.img"), []byte("pages"), 0o600)
	os.WriteFile(filepath.Join(src, "config.dump"), []byte("{}"), 0o600)
	out := filepath.Join(t.TempDir(), "c.tar")
	if err := writeTar(src, out+".tmp", out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dst := t.TempDir()
	if err := untar(f, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "checkpoint", "pages-1.img")); string(b) != "pages" {
		t.Errorf("round trip lost checkpoint/pages-1.img: %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("writeTar left temporary files: %v", entries)
	}
}

// A checkpoint's work directory is recorded before it is made, so a restart after a
// kill at any point removes it; a finished checkpoint leaves neither.
func TestCheckpointWorkSwept(t *testing.T) {
	s := &Service{opts: Options{RootDir: t.TempDir()}}
	locDir := t.TempDir()
	work, cleanup, err := s.checkpointWork(filepath.Join(locDir, "c.tar"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(work, "dump.log"), []byte("x"), 0o600)
	// keelson dies here; at restart:
	s.sweepCheckpointWork()
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work dir left after the sweep: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.opts.RootDir, "checkpoint-work")); len(entries) != 0 {
		t.Errorf("records left: %v", entries)
	}
	cleanup()
	_, cleanup, err = s.checkpointWork(filepath.Join(locDir, "c.tar"))
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	for _, d := range []string{locDir, filepath.Join(s.opts.RootDir, "checkpoint-work")} {
		if entries, _ := os.ReadDir(d); len(entries) != 0 {
			t.Errorf("%s: left %v", d, entries)
		}
	}
}
