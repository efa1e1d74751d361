package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// CgroupControllers lists the mounted cgroup hierarchies under /sys/fs/cgroup ("" for
// a pure cgroup v2 host).
func CgroupControllers() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{""}
	}
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// newCgroupParent names a cgroup parent for one instance's pods and removes it (and
// anything left under it) when the test ends.
func newCgroupParent(t testing.TB, n int) string {
	parent := fmt.Sprintf("/keelson-test-%d-%d", os.Getpid(), n)
	t.Cleanup(func() { RemoveCgroup(parent) })
	return parent
}

// RemoveCgroup removes a cgroup directory tree, deepest first, in every hierarchy.
func RemoveCgroup(rel string) {
	for _, c := range CgroupControllers() {
		root := filepath.Join("/sys/fs/cgroup", c, rel)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
}

// cgroupPids lists the processes anywhere under a cgroup (in one hierarchy: with
// cgroup v1 every process is in every hierarchy).
func cgroupPids(rel string) []int {
	if rel == "" {
		return nil
	}
	c := CgroupControllers()
	if len(c) == 0 {
		return nil
	}
	ctrl := c[0]
	for _, x := range c {
		if x == "pids" || x == "memory" {
			ctrl = x
		}
	}
	var pids []int
	_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", ctrl, rel), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscanf(f, "%d", &pid); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
