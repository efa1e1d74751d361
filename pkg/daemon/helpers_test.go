package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSearchable(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the test's own temp dirs are private
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	inner := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(inner, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := searchable(inner); err != nil {
		t.Errorf("a searchable tree: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := searchable(inner); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "a")+" (mode 700)") {
		t.Errorf("a private parent: %v", err)
	}
}
