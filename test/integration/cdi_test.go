package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// TestCDIDevices: a device named by CDI (as a device plugin or DRA driver hands it
// out) reaches the container with its spec's edits: a device node (the host's
// /dev/null under another name), a mount and an environment variable; by field or by
// annotation; a spec written after keelson started is seen; an unknown name is refused.
func TestCDIDevices(t *testing.T) {
	specDir := harness.NewDir(t, "cdi-")
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "hello"), []byte("from cdi"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := startWithRegistry(t, reg, func(o *harness.Options) {
		o.ExtraConfig = fmt.Sprintf("\n[cdi]\n  enabled = true\n  spec_dirs = [%q]\n", specDir)
	})
	mustPull(t, k, images.Busybox)
	spec := fmt.Sprintf(`{"cdiVersion": "0.6.0", "kind": "keelson.test/device",
  "devices": [{"name": "one", "containerEdits": {
    "deviceNodes": [{"path": "/dev/keelson-one", "hostPath": "/dev/null"}],
    "env": ["KEELSON_CDI=one"],
    "mounts": [{"hostPath": %q, "containerPath": "/cdi", "options": ["ro", "bind"]}]}}]}`, shared)
	// Written after start: the spec dirs are watched.
	if err := os.WriteFile(filepath.Join(specDir, "keelson.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newPod(t, k, "cdi")
	for _, how := range []string{"field", "annotation"} {
		cfg := ctrConfig("c-"+how, images.Busybox, "sleep", "100000")
		if how == "field" {
			cfg.CDIDevices = []*runtimeapi.CDIDevice{{Name: "keelson.test/device=one"}}
		} else {
			cfg.Annotations = map[string]string{"cdi.k8s.io/test": "keelson.test/device=one"}
		}
		var id string
		var err error
		for range 50 { // the watch may take a moment
			if id, err = p.create(t, cfg); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s: CreateContainer: %v", how, err)
		}
		if _, err := k.Runtime.StartContainer(harness.Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("%s: StartContainer: %v", how, err)
		}
		r := execSync(t, k, id, 10, "sh", "-c", "test -c /dev/keelson-one && echo $KEELSON_CDI && cat /cdi/hello")
		if got := strings.TrimSpace(string(r.Stdout)); r.ExitCode != 0 || got != "one\nfrom cdi" {
			t.Errorf("%s: inside: exit %d %q %s", how, r.ExitCode, got, r.Stderr)
		}
	}
	for name, cfg := range map[string]*runtimeapi.ContainerConfig{
		"unknown device": func() *runtimeapi.ContainerConfig {
			c := ctrConfig("unknown", images.Busybox, "true")
			c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "keelson.test/device=two"}}
			return c
		}(),
		"not a qualified name": func() *runtimeapi.ContainerConfig {
			c := ctrConfig("bad", images.Busybox, "true")
			c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "gpu0"}}
			return c
		}(),
	} {
		if _, err := p.create(t, cfg); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
