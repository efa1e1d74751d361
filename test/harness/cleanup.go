package harness

import (
	"os"
	"testing"

	"github.com/keelson/keelson/pkg/mounts"
)

// RemoveAll unmounts every mount under dir (deepest first) and removes it.
func RemoveAll(t testing.TB, dir string) {
	mounts.UnmountUnder(dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Logf("removing %s: %v", dir, err)
	}
}

// MountsUnder lists mount points at or below dir, deepest first.
func MountsUnder(dir string) []string { return mounts.Under(dir) }
