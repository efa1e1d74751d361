package criu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func fakeCRIU(t *testing.T, script string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "criu"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheck(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin") // sleep, but (Debian puts criu in /usr/sbin) no criu
	var off *Checker
	if err := off.Check(); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("nil checker: %v", err)
	}
	if _, err := exec.LookPath("criu"); err == nil {
		t.Log("criu on /usr/bin:/bin; not checking the no-criu answer")
	} else if err := (&Checker{}).Check(); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "no criu binary") {
		t.Errorf("no criu: %v", err)
	}
	failing := &Checker{Dirs: []string{fakeCRIU(t, `echo "Error: vdso: Unexpected rt vDSO area bounds" >&2; exit 1`)}}
	err := failing.Check()
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "vDSO") {
		t.Errorf("failing criu check: %v", err)
	}
	if again := failing.Check(); again != err {
		t.Errorf("a failed check is not answered from memory: %v", again)
	}
	dumpFails := &Checker{Dirs: []string{fakeCRIU(t, `[ "$1" = check ] && exit 0; exit 1`)}}
	if err := dumpFails.Check(); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "cannot dump") {
		t.Errorf("failing trial dump: %v", err)
	}
	works := &Checker{Dirs: []string{fakeCRIU(t, `exit 0`)}}
	if err := works.Check(); err != nil || !works.ok {
		t.Errorf("working criu: %v", err)
	}
}
