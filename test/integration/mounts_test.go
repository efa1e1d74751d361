package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// TestImageVolumes: an image mounted read-only at a container path (KEP-4639), a
// one-layer image and a two-layer one, whole or a sub path; removal unmounts it and
// removes its snapshot view.
func TestImageVolumes(t *testing.T) {
	k := containerTestKeelson(t)
	mustPull(t, k, images.EchoServer)
	p := newPod(t, k, "imgvol")
	cfg := ctrConfig("user", images.Busybox, "sleep", "100000")
	cfg.Mounts = []*runtimeapi.Mount{
		{ContainerPath: "/img", Readonly: true, Image: &runtimeapi.ImageSpec{Image: images.EchoServer}},
		{ContainerPath: "/sub", Readonly: true, Image: &runtimeapi.ImageSpec{Image: images.Busybox}, ImageSubPath: "bin"},
	}
	id := p.run(t, cfg)
	for _, check := range [][]string{
		{"test", "-x", "/img/echoserver"},  // the upper layer
		{"test", "-x", "/img/bin/busybox"}, // the lower one
		{"test", "-x", "/sub/busybox"},     // a sub path
	} {
		if r := execSync(t, k, id, 30, check...); r.ExitCode != 0 {
			t.Errorf("%v: exit %d %s", check, r.ExitCode, r.Stderr)
		}
	}
	if r := execSync(t, k, id, 30, "touch", "/img/new"); r.ExitCode == 0 {
		t.Errorf("an image volume is writable")
	}
	dir := filepath.Join(k.StateDir, "image-volumes")
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d image volumes mounted under %s, want 2", len(entries), dir)
	}
	// The image is kept from removal while mounted: pinned for kubelet's image GC,
	// RemoveImage refused.
	pinned := func() bool {
		resp, err := k.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: images.EchoServer}})
		if err != nil || resp.GetImage() == nil {
			t.Fatalf("ImageStatus: %v %v", resp, err)
		}
		return resp.GetImage().GetPinned()
	}
	if !pinned() {
		t.Errorf("an image mounted as an image volume is not reported pinned")
	}
	if _, err := k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: images.EchoServer}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("RemoveImage of a mounted image volume: %v, want FailedPrecondition", err)
	}
	// After a restart keelson still knows the volumes: still pinned, and removal
	// unmounts them.
	stopCtr(t, k, id, 0)
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{Registry: reg})
	if !pinned() {
		t.Errorf("after a restart, the image volume's image is not reported pinned")
	}
	removeCtr(t, k, id)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("image volumes left after removal: %v", entries)
	}
	if pinned() {
		t.Errorf("the image is still pinned after the container that mounted it was removed")
	}
	if m := harness.MountsUnder(dir); len(m) != 0 {
		t.Errorf("image volume mounts left: %v", m)
	}

	// A sub path the image lacks is refused, and leaves nothing.
	bad := ctrConfig("bad", images.Busybox, "true")
	bad.Mounts = []*runtimeapi.Mount{{ContainerPath: "/x", Readonly: true, Image: &runtimeapi.ImageSpec{Image: images.Busybox}, ImageSubPath: "no/such/dir"}}
	if _, err := p.create(t, bad); status.Code(err) != codes.InvalidArgument {
		t.Errorf("missing image_sub_path: %v, want InvalidArgument", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("image volumes left after a refused creation: %v", entries)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
