package images

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// FuzzNormalize: any image reference a request may carry parses or is refused
// without a panic, and the registry host of an accepted one can only name a
// directory inside the hosts.toml directory (<dir>/<host>, <dir>/<host>_<port>_).
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"busybox", "registry.k8s.io/pause:3.10", "localhost:5000/a/b@sha256:" + strings.Repeat("a", 64),
		"../../etc/x", "[::1]:5000/x:y", "UPPER/x", "a..b/c", "x\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		named, err := Normalize(ref)
		if err != nil {
			return
		}
		root := "/etc/keelson/certs.d"
		host := reference.Domain(named)
		candidates := []string{filepath.Join(root, host)}
		if i := strings.LastIndex(host, ":"); i > 0 {
			candidates = append(candidates, filepath.Join(root, host[:i]+"_"+host[i+1:]+"_"))
		}
		for _, c := range candidates {
			if rel, err := filepath.Rel(root, c); err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.Contains(rel, "/") {
				t.Fatalf("reference %q names the hosts dir %s", ref, c)
			}
		}
		if strings.ContainsAny(named.String(), " \n\x00") {
			t.Fatalf("normalized %q to %q", ref, named)
		}
	})
}
