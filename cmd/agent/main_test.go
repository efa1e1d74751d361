package main

import (
	"os"
	"path/filepath"
	"testing"
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
