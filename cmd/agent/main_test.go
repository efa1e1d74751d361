package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/pkg/images"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.toml"), filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(good, []byte("[runtime]\n  cgroup_driver = 'cgroupfs'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("[runtime]\n  cgroup_driver = 'cgroupv3'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{good: 0, bad: 1, filepath.Join(dir, "missing.toml"): 1, "../../deploy/config.toml": 0} {
		if got := run([]string{"config", "validate", path}); got != want {
			t.Errorf("config validate %s = %d, want %d", path, got, want)
		}
	}
	if got := run([]string{"config", "validate", "a", "b"}); got != 2 {
		t.Errorf("two files: %d, want usage (2)", got)
	}
}

func TestProgressLine(t *testing.T) {
	p := images.PullProgress{Ref: "docker.io/library/busybox:1.36", Bytes: 3 << 20, TotalBytes: 12 << 20, Layers: 2, StartedAt: time.Now().Add(-1500 * time.Millisecond)}
	got := progressLine(p, 8)
	if !strings.HasPrefix(got, "docker.io/library/busybox:1.36 [==      ] 3.0 MiB / 12.0 MiB, 2 layers, 1.5s") {
		t.Errorf("progressLine = %q", got)
	}
	p.TotalBytes = 0
	if got := progressLine(p, 8); strings.Contains(got, "[") || strings.Contains(got, " / ") {
		t.Errorf("with no total known yet: %q", got)
	}
}
