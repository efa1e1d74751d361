// Package cgroups holds what keelson needs to know about the node's cgroups: which
// version is mounted at /sys/fs/cgroup, and which controllers exist.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Root is where the cgroup file system is mounted.
const Root = "/sys/fs/cgroup"

// IsV2 tells whether Root is the unified (v2) hierarchy. It is read once.
var IsV2 = sync.OnceValue(func() bool {
	var st unix.Statfs_t
	if err := unix.Statfs(Root, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
})

// HasController tells whether a controller (hugetlb, memory…) is available.
func HasController(name string) bool {
	if IsV2() {
		b, err := os.ReadFile(Root + "/cgroup.controllers")
		return err == nil && strings.Contains(" "+strings.TrimSpace(string(b))+" ", " "+name+" ")
	}
	_, err := os.Stat(Root + "/" + name)
	return err == nil
}

// dirs are the directories of a cgroup (cgroupfs form, e.g. /kubepods/pod1/<id>) in
// each mounted hierarchy: one on cgroup v2, one per controller on v1.
func dirs(path string) []string {
	path = filepath.Clean("/" + path)
	if path == "/" {
		return nil
	}
	if IsV2() {
		return []string{filepath.Join(Root, path)}
	}
	var out []string
	entries, _ := os.ReadDir(Root)
	for _, e := range entries {
		// Named hierarchies and links such as cpu -> cpu,cpuacct are skipped or
		// reached through their real directory.
		if e.IsDir() {
			out = append(out, filepath.Join(Root, e.Name(), path))
		}
	}
	return out
}

// Remove deletes a container's or sandbox's own cgroup (as runc delete would) in
// every hierarchy, killing any process still in it: a task creation cut short can
// leave one behind. A cgroup that does not exist is fine.
func Remove(path string) error {
	var errs []error
	for _, d := range dirs(Dir(path)) {
		errs = append(errs, removeDir(d))
	}
	return errors.Join(errs...)
}

func removeDir(d string) error {
	for attempt := 0; ; attempt++ {
		err := unix.Rmdir(d)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || attempt == 20 {
			return fmt.Errorf("removing cgroup %s: %w", d, err)
		}
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// OOMKills is how many processes the kernel's OOM killer has killed in the cgroup a
// cgroupsPath names (either driver's form): memory.events' oom_kill on cgroup v2,
// memory.oom_control's on v1. ok is false when it cannot be read (the cgroup is gone).
func OOMKills(cgroupsPath string) (n int, ok bool) {
	return oomKillsIn(filepath.Clean("/" + Dir(cgroupsPath)))
}

// ParentOOMKills is OOMKills of the cgroup's parent (a pod's cgroup or slice), which
// on cgroup v2 counts the kills of its whole subtree: it still answers once a
// container's own cgroup is gone (systemd removes an empty scope at once). Not on v1,
// where the count is not hierarchical.
func ParentOOMKills(cgroupsPath string) (n int, ok bool) {
	if !IsV2() {
		return 0, false
	}
	return oomKillsIn(filepath.Dir(filepath.Clean("/" + Dir(cgroupsPath))))
}

func oomKillsIn(dir string) (int, bool) {
	if dir == "/" {
		return 0, false
	}
	file := filepath.Join(Root, dir, "memory.events")
	if !IsV2() {
		file = filepath.Join(Root, "memory", dir, "memory.oom_control")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	return oomKillCount(string(b))
}

// oomKillCount reads the oom_kill line of memory.events or memory.oom_control.
func oomKillCount(content string) (int, bool) {
	for _, line := range strings.Split(content, "\n") {
		if v, found := strings.CutPrefix(line, "oom_kill "); found {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}
