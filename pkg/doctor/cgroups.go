package doctor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/keelson/keelson/pkg/cgroups"
)

// orphanCgroups finds empty cgroup directories named by a keelson-style ID that
// keelson no longer knows (runc removes a container's cgroup on delete; a crash can
// leave one).
func orphanCgroups(known map[string]bool) []Finding {
	var out []Finding
	seen := map[string]bool{}
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		roots, _ = filepath.Glob("/sys/fs/cgroup/*")
	}
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			id, scope := scopeID(d.Name())
			if len(id) != 64 || !idRE.MatchString(id) || known[id] {
				return nil
			}
			// Only where keelson's pods live (kubelet's kubepods tree, or keelson's own
			// default parent): other runtimes name their cgroups by 64-hex IDs too. A
			// keelson-<id>.scope (systemd driver) is keelson's wherever it is.
			if !scope && !strings.Contains(p, "kubepods") && !strings.Contains(p, "/keelson") {
				return filepath.SkipDir
			}
			if procs, _ := os.ReadFile(filepath.Join(p, "cgroup.procs")); strings.TrimSpace(string(procs)) != "" {
				return filepath.SkipDir // still has processes: not ours to judge
			}
			if !seen[p] {
				seen[p] = true
				path := p
				out = append(out, Finding{Kind: "cgroup", What: path, fix: func(context.Context) error { return removeCgroupTree(path) }})
			}
			return filepath.SkipDir
		})
	}
	return out
}

// scopeID is the container ID in a cgroup directory's name: the name itself
// (cgroupfs driver), or <id> of keelson-<id>.scope (systemd driver).
func scopeID(name string) (id string, scope bool) {
	rest, ok := strings.CutPrefix(name, cgroups.ScopePrefix+"-")
	if id, ok2 := strings.CutSuffix(rest, ".scope"); ok && ok2 {
		return id, true
	}
	return name, false
}

// removeCgroupTree removes a cgroup directory and its children, deepest first.
func removeCgroupTree(root string) error {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}
