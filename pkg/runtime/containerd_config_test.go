package runtime

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestRenderChildConfig(t *testing.T) {
	c := ChildConfig{Root: "/r", State: "/s", Address: "/s/c.sock", LogLevel: "info", SocketDir: "/s/sh",
		MaxConcurrentDownloads: 4, Snapshotter: "overlayfs", Platform: "linux/amd64"}
	for _, tc := range []struct {
		major       int
		wantVersion int64
		wantCRIOff  string
		shimDir     bool
	}{
		{1, 2, "io.containerd.grpc.v1.cri", false},
		{2, 3, "io.containerd.cri.v1.runtime", true},
	} {
		out := c.Render(tc.major)
		var parsed map[string]any
		if err := toml.Unmarshal([]byte(out), &parsed); err != nil {
			t.Fatalf("major %d: rendered config does not parse: %v\n%s", tc.major, err, out)
		}
		if parsed["version"] != tc.wantVersion {
			t.Errorf("major %d: version = %v", tc.major, parsed["version"])
		}
		if parsed["root"] != "/r" || parsed["state"] != "/s" {
			t.Errorf("major %d: root/state wrong:\n%s", tc.major, out)
		}
		if grpc := parsed["grpc"].(map[string]any); grpc["address"] != "/s/c.sock" {
			t.Errorf("major %d: grpc address wrong:\n%s", tc.major, out)
		}
		if !strings.Contains(out, tc.wantCRIOff) || !strings.Contains(out, "io.containerd.internal.v1.opt") {
			t.Errorf("major %d: CRI/opt plugins not disabled:\n%s", tc.major, out)
		}
		if strings.Contains(out, "socket_dir") != tc.shimDir {
			t.Errorf("major %d: socket_dir presence wrong:\n%s", tc.major, out)
		}
		if tc.major == 2 {
			plugins := parsed["plugins"].(map[string]any)
			tr, _ := plugins["io.containerd.transfer.v1.local"].(map[string]any)
			unpack, _ := tr["unpack_config"].([]any)
			if tr["max_concurrent_downloads"] != int64(4) || len(unpack) != 1 || unpack[0].(map[string]any)["snapshotter"] != "overlayfs" {
				t.Errorf("transfer plugin config wrong:\n%s", out)
			}
		}
	}
}
