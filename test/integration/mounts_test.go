package integration

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

func TestContainerMounts(t *testing.T) {
	k := containerTestKeelson(t)
	st, err := k.Runtime.Status(harness.Ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rro := false
	for _, h := range st.RuntimeHandlers {
		if h.Name == "runc" {
			rro = h.Features.GetRecursiveReadOnlyMounts()
		}
	}
	if !st.GetFeatures().GetSupplementalGroupsPolicy() || !st.GetFeatures().GetMountOptions() {
		t.Errorf("Status does not advertise supplemental groups policies and mount options: %v", st.GetFeatures())
	}

	host := harness.NewDir(t, "ktmnt-")
	sub := filepath.Join(host, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })

	p := newPod(t, k, "mounts")
	cfg := ctrConfig("m", images.Busybox, "sleep", "1000")
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/rw", HostPath: host},
		{ContainerPath: "/ro", HostPath: host, Readonly: true},
	}
	if rro {
		cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{ContainerPath: "/rro", HostPath: host, Readonly: true, RecursiveReadOnly: true})
	}
	id := p.run(t, cfg)
	if r := execSync(t, k, id, 5, "sh", "-c", "echo hi > /rw/from-container"); r.ExitCode != 0 {
		t.Fatalf("write to rw mount: %s", r.Stderr)
	}
	if b, err := os.ReadFile(filepath.Join(host, "from-container")); err != nil || string(b) != "hi\n" {
		t.Errorf("host does not see the container's write: %q %v", b, err)
	}
	if r := execSync(t, k, id, 5, "touch", "/ro/x"); r.ExitCode == 0 {
		t.Errorf("wrote into a read-only mount")
	}
	// A plain read-only bind leaves submounts writable...
	if r := execSync(t, k, id, 5, "touch", "/ro/sub/x"); r.ExitCode != 0 {
		t.Errorf("submount of a non-recursive read-only mount is not writable: %s", r.Stderr)
	}
	// ...a recursive one does not.
	if rro {
		if r := execSync(t, k, id, 5, "touch", "/rro/sub/y"); r.ExitCode == 0 {
			t.Errorf("wrote into a submount of a recursive read-only mount")
		}
	} else {
		t.Log("runtime does not advertise recursive read-only mounts; skipping that part")
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
