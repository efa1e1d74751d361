package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestStoreResolve(t *testing.T) {
	s := NewStore[int]()
	s.Put("abc123", 1)
	s.Put("abd456", 2)
	for _, tc := range []struct {
		id      string
		want    int
		wantErr func(error) bool
	}{
		{"abc123", 1, nil},
		{"abc", 1, nil},
		{"abd", 2, nil},
		{"ab", 0, errdefs.IsInvalidArgument},
		{"zzz", 0, errdefs.IsNotFound},
		{"", 0, errdefs.IsInvalidArgument},
	} {
		v, _, err := s.Resolve(tc.id)
		if tc.wantErr != nil {
			if !tc.wantErr(err) {
				t.Errorf("Resolve(%q) err = %v", tc.id, err)
			}
			continue
		}
		if err != nil || v != tc.want {
			t.Errorf("Resolve(%q) = %d, %v", tc.id, v, err)
		}
	}
	if l := s.List(); len(l) != 2 || l[0] != 1 {
		t.Errorf("List = %v", l)
	}
}

func TestNames(t *testing.T) {
	var n Names
	if err := n.Reserve("pod_ns_uid_0", "id1"); err != nil {
		t.Fatal(err)
	}
	if err := n.Reserve("pod_ns_uid_0", "id1"); err != nil {
		t.Errorf("re-reserving for the same id: %v", err)
	}
	if err := n.Reserve("pod_ns_uid_0", "id2"); !errdefs.IsAlreadyExists(err) {
		t.Errorf("duplicate reserve: %v", err)
	}
	n.Release("pod_ns_uid_0", "id2") // not the holder: no effect
	if n.Holder("pod_ns_uid_0") != "id1" {
		t.Errorf("release by a non-holder freed the name")
	}
	n.Release("pod_ns_uid_0", "id1")
	if err := n.Reserve("pod_ns_uid_0", "id2"); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "status.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		if string(b) != content {
			t.Errorf("content = %q", b)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestStatusWritesThenRefusesAfterRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "obj")
	st := NewStatus(filepath.Join(dir, "status.json"), 1)
	if err := st.Update(func(v *int) bool { *v = 2; return true }); err != nil || st.Get() != 2 {
		t.Fatalf("update: %v, %d", err, st.Get())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "status.json"))
	if string(b) != "2" {
		t.Errorf("file = %q", b)
	}
	if err := st.Update(func(v *int) bool { *v = 9; return false }); err != nil || st.Get() != 2 {
		t.Errorf("an update that changes nothing changed %d (%v)", st.Get(), err)
	}
	if err := st.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := st.Set(3); !errdefs.IsNotFound(err) {
		t.Errorf("update after remove: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("an update after removal brought the directory back")
	}
	if !st.Removed() || st.Get() != 2 {
		t.Errorf("removed=%v value=%d", st.Removed(), st.Get())
	}
}
