// Package mounts lists and removes the mounts under a directory (pinned namespaces,
// a pod's /dev/shm, a test's dirs).
package mounts

import (
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Under lists the mount points at or below dir, deepest first.
func Under(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescape(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) {
	for _, m := range Under(dir) {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// unescape undoes mountinfo's octal escapes of spaces, tabs, newlines, backslashes.
func unescape(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}
