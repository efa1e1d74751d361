package cgroups

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResize(t *testing.T) {
	read := func(t *testing.T, p string) string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	l := Limits{CPUShares: 1024, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	t.Run("v1", func(t *testing.T) {
		root := t.TempDir()
		for _, c := range []string{"cpu", "memory"} {
			if err := os.MkdirAll(filepath.Join(root, c, "kubepods/pod1"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		ok, err := Resize(root, false, ParentDir(Cgroupfs, "kubepods/pod1"), l)
		if !ok || err != nil {
			t.Fatalf("Resize = %v, %v", ok, err)
		}
		for file, want := range map[string]string{
			"cpu/kubepods/pod1/cpu.shares": "1024", "cpu/kubepods/pod1/cpu.cfs_quota_us": "50000",
			"cpu/kubepods/pod1/cpu.cfs_period_us": "100000", "memory/kubepods/pod1/memory.limit_in_bytes": "67108864",
		} {
			if got := read(t, filepath.Join(root, file)); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
		// No quota any more: -1.
		if _, err := Resize(root, false, "/kubepods/pod1", Limits{CPUQuota: -1}); err != nil {
			t.Fatal(err)
		}
		if got := read(t, filepath.Join(root, "cpu/kubepods/pod1/cpu.cfs_quota_us")); got != "-1" {
			t.Errorf("unlimited quota = %q", got)
		}
	})
	t.Run("v2 systemd", func(t *testing.T) {
		root := t.TempDir()
		dir := ParentDir(Systemd, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice")
		if dir != "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice" {
			t.Fatalf("ParentDir = %s", dir)
		}
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if ok, err := Resize(root, true, ParentDir(Systemd, "kubepods-burstable-pod1.slice"), l); !ok || err != nil {
			t.Fatalf("Resize = %v, %v", ok, err)
		}
		for file, want := range map[string]string{"cpu.weight": "39", "cpu.max": "50000 100000", "memory.max": "67108864"} {
			if got := read(t, filepath.Join(root, dir, file)); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
	})
	t.Run("no cgroup", func(t *testing.T) {
		if ok, err := Resize(t.TempDir(), true, "/kubepods/none", l); ok || err != nil {
			t.Errorf("Resize of a missing cgroup = %v, %v", ok, err)
		}
		if ok, err := Resize(t.TempDir(), true, ParentDir(Cgroupfs, ""), l); ok || err != nil {
			t.Errorf("Resize without a parent = %v, %v", ok, err)
		}
	})
}
