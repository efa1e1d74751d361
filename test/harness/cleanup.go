package harness

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// RemoveAll unmounts every mount under dir (deepest first) and removes it.
func RemoveAll(t testing.TB, dir string) {
	for _, m := range MountsUnder(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("removing %s: %v", dir, err)
	}
}

// MountsUnder lists mount points at or below dir, deepest first.
func MountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
