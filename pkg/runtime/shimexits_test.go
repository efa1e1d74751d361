package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestShimAddress(t *testing.T) {
	for _, tc := range []struct {
		name      string
		files     map[string]string
		version   int
		address   string
		wantError bool
	}{
		{name: "containerd 2.x bootstrap", files: map[string]string{"bootstrap.json": `{"version":3,"address":"unix:///run/s/abc","protocol":"ttrpc"}`}, version: 3, address: "/run/s/abc"},
		{name: "1.x address file", files: map[string]string{"address": "unix:///run/containerd/s/def\n"}, version: 2, address: "/run/containerd/s/def"},
		{name: "bootstrap wins", files: map[string]string{"bootstrap.json": `{"version":3,"address":"unix:///a","protocol":"ttrpc"}`, "address": "unix:///b"}, version: 3, address: "/a"},
		{name: "grpc shim", files: map[string]string{"bootstrap.json": `{"version":3,"address":"unix:///a","protocol":"grpc"}`}, wantError: true},
		{name: "vsock", files: map[string]string{"bootstrap.json": `{"version":3,"address":"vsock://3:1024","protocol":"ttrpc"}`}, wantError: true},
		{name: "no files", wantError: true},
		{name: "bad json", files: map[string]string{"bootstrap.json": `{`}, wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			v, a, err := shimAddress(dir)
			if (err != nil) != tc.wantError {
				t.Fatalf("err = %v, want error %v", err, tc.wantError)
			}
			if err == nil && (v != tc.version || a != tc.address) {
				t.Errorf("got v%d %q, want v%d %q", v, a, tc.version, tc.address)
			}
		})
	}
}

func TestHarvestSkipsWhatIsNotAsked(t *testing.T) {
	state := t.TempDir()
	bundle := filepath.Join(state, "io.containerd.runtime.v2.task", "ns", "abc")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	// No shim answers at this address: nothing is recorded, nothing hangs.
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte("unix://"+filepath.Join(state, "none.sock")), 0o600); err != nil {
		t.Fatal(err)
	}
	asked := 0
	n := HarvestShimExits(state, "ns", func(id string) string {
		asked++
		return filepath.Join(state, id+".json")
	})
	if n != 0 || asked != 1 {
		t.Errorf("recorded %d, asked %d", n, asked)
	}
	if _, ok := ReadShimExit(filepath.Join(state, "abc.json")); ok {
		t.Error("an exit was recorded for a dead shim")
	}
}
