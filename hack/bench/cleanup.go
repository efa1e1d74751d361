package main

import (
	"os"
	"path/filepath"
	"sort"

	"github.com/keelson/keelson/pkg/mounts"
)

// cleanupDir unmounts everything under dir and removes it.
func cleanupDir(dir string) {
	mounts.UnmountUnder(dir)
	_ = os.RemoveAll(dir)
}

// removeCgroup removes a cgroup tree in every hierarchy, deepest first.
func removeCgroup(rel string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"}
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(root, rel), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
}
