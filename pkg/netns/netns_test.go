package netns

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCreateRemove(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	p := filepath.Join(t.TempDir(), "ns", "pod1")
	if err := Create(p); err != nil {
		t.Fatal(err)
	}
	if !IsMounted(p) {
		t.Fatal("netns not mounted")
	}
	if err := Create(p); err == nil {
		t.Error("creating over an existing netns succeeded")
	}
	if !IsMounted(p) {
		t.Fatal("a failed second Create broke the first netns")
	}
	if err := Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("netns file left: %v", err)
	}
	if err := Remove(p); err != nil {
		t.Errorf("second Remove: %v", err)
	}
}
