package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
	"github.com/keelson/keelson/test/registry"
)

func startWithRegistry(t *testing.T, r *registry.Registry, mutate ...func(*harness.Options)) *harness.Keelson {
	t.Helper()
	harness.RequireRoot(t)
	opts := harness.Options{Registry: r}
	for _, m := range mutate {
		m(&opts)
	}
	k := harness.Prepare(t, opts)
	k.Start(opts)
	return k
}

// busyboxRegistry starts a registry for one test, serving the busybox image under
// each of refs.
func busyboxRegistry(t *testing.T, refs ...string) *registry.Registry {
	t.Helper()
	r, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	bb, err := images.BusyboxImage()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		if err := r.Push(ref, bb); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func pull(t *testing.T, k *harness.Keelson, ref string, auth *runtimeapi.AuthConfig) (string, error) {
	t.Helper()
	resp, err := k.Images.PullImage(harness.Ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}, Auth: auth})
	if err != nil {
		return "", err
	}
	return resp.ImageRef, nil
}

func mustPull(t *testing.T, k *harness.Keelson, ref string) string {
	t.Helper()
	id, err := pull(t, k, ref, nil)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return id
}

func imageStatus(t *testing.T, k *harness.Keelson, ref string) *runtimeapi.Image {
	t.Helper()
	resp, err := k.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus %s: %v", ref, err)
	}
	return resp.Image
}

func digestOf(t *testing.T, img v1.Image) (manifest, config string) {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	c, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), c.String()
}

func TestPullByTagAndDigest(t *testing.T) {
	k := startWithRegistry(t, reg)
	bb, err := images.BusyboxImage()
	if err != nil {
		t.Fatal(err)
	}
	manifest, config := digestOf(t, bb)

	id := mustPull(t, k, "busybox:1.36") // short name: docker.io/library/ is implied
	if id != config {
		t.Fatalf("ImageRef = %s, want the config digest %s", id, config)
	}
	repoDigest := "docker.io/library/busybox@" + manifest
	for _, ref := range []string{"busybox:1.36", "docker.io/library/busybox:1.36", id, strings.TrimPrefix(id, "sha256:"), strings.TrimPrefix(id, "sha256:")[:12], repoDigest} {
		img := imageStatus(t, k, ref)
		if img == nil {
			t.Errorf("ImageStatus(%s) = nil", ref)
			continue
		}
		if img.Id != id || img.Size == 0 || img.Pinned {
			t.Errorf("ImageStatus(%s) = %+v", ref, img)
		}
		if len(img.RepoTags) != 1 || img.RepoTags[0] != "docker.io/library/busybox:1.36" {
			t.Errorf("RepoTags = %v", img.RepoTags)
		}
		if len(img.RepoDigests) != 1 || img.RepoDigests[0] != repoDigest {
			t.Errorf("RepoDigests = %v, want %s", img.RepoDigests, repoDigest)
		}
	}
	if img := imageStatus(t, k, "busybox:9.99"); img != nil {
		t.Errorf("an unknown tag has a status: %v", img)
	}

	// A digest pull of the same image yields the same ID.
	if id2 := mustPull(t, k, repoDigest); id2 != id {
		t.Errorf("digest pull ID %s != tag pull ID %s", id2, id)
	}
	// Verbose status carries the image config.
	resp, err := k.Images.ImageStatus(harness.Ctx(t), &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: id}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChainID   string
		ImageSpec struct{ Config struct{ Cmd []string } }
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.ChainID == "" || len(info.ImageSpec.Config.Cmd) == 0 {
		t.Errorf("verbose info = %v (%v)", resp.Info, err)
	}

	list, err := k.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 1 || list.Images[0].Id != id {
		t.Errorf("ListImages = %v, %v", list, err)
	}
	list, err = k.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "busybox:1.36"}}})
	if err != nil || len(list.Images) != 1 {
		t.Errorf("ListImages with filter = %v, %v", list, err)
	}
	list, err = k.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: &runtimeapi.ImageSpec{Image: "nothing:here"}}})
	if err != nil || len(list.Images) != 0 {
		t.Errorf("ListImages with a filter matching nothing = %v, %v", list, err)
	}

	// A name added behind keelson's back (containerd's image API) shows up through
	// containerd's events.
	cl := k.ContainerdClient(t)
	rec, err := cl.ImageService().Get(harness.Ctx(t), "docker.io/library/busybox:1.36")
	if err != nil {
		t.Fatal(err)
	}
	rec.Name = "docker.io/library/busybox:sideloaded"
	if _, err := cl.ImageService().Create(harness.Ctx(t), rec); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for imageStatus(t, k, "busybox:sideloaded") == nil {
		if time.Now().After(deadline) {
			t.Fatal("an image created in containerd never reached keelson's index")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cl.ImageService().Delete(harness.Ctx(t), rec.Name); err != nil {
		t.Fatal(err)
	}
	for imageStatus(t, k, "busybox:sideloaded") != nil {
		if time.Now().After(deadline) {
			t.Fatal("an image deleted in containerd stayed in keelson's index")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The index is rebuilt from containerd after a restart.
	if err := k.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{Registry: reg})
	img := imageStatus(t, k, "busybox:1.36")
	if img == nil || img.Id != id || len(img.RepoDigests) != 1 {
		t.Errorf("after restart: %+v", img)
	}
}

func TestRemoveImageRemovesAllTags(t *testing.T) {
	r, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bb, _ := images.BusyboxImage()
	tags := []string{"docker.io/library/busybox:a", "docker.io/library/busybox:b", "docker.io/keelson/other:c"}
	for _, tag := range tags {
		if err := r.Push(tag, bb); err != nil {
			t.Fatal(err)
		}
	}
	k := startWithRegistry(t, r)
	var id string
	for _, tag := range tags {
		id = mustPull(t, k, tag)
	}
	img := imageStatus(t, k, id)
	if img == nil || len(img.RepoTags) != 3 {
		t.Fatalf("one image under three tags: %+v", img)
	}
	if _, err := k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox:b"}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range append(tags, id) {
		if img := imageStatus(t, k, ref); img != nil {
			t.Errorf("%s still present after removal: %+v", ref, img)
		}
	}
	cl := k.ContainerdClient(t)
	recs, err := cl.ImageService().List(harness.Ctx(t))
	if err != nil || len(recs) != 0 {
		t.Errorf("containerd image records left: %v %v", recs, err)
	}
	// Removing what is not there succeeds.
	if _, err := k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: "busybox:b"}}); err != nil {
		t.Errorf("removing a missing image: %v", err)
	}
}

func TestImageUser(t *testing.T) {
	r, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bb, _ := images.BusyboxImage()
	cases := []struct {
		tag, user string
		uid       int64 // -1: none
		username  string
	}{
		{"uid", "1234", 1234, ""},
		{"username", "keelson", -1, "keelson"},
		{"uidgroup", "1234:5678", 1234, ""},
		{"usernamegroup", "keelson:extra", -1, "keelson"},
		{"none", "", -1, ""},
	}
	for _, c := range cases {
		img, err := images.WithConfig(bb, func(cfg *v1.Config) { cfg.User = c.user })
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Push("docker.io/keelson/user:"+c.tag, img); err != nil {
			t.Fatal(err)
		}
	}
	k := startWithRegistry(t, r)
	for _, c := range cases {
		t.Run(c.tag, func(t *testing.T) {
			ref := "docker.io/keelson/user:" + c.tag
			mustPull(t, k, ref)
			img := imageStatus(t, k, ref)
			gotUID := int64(-1)
			if img.Uid != nil {
				gotUID = img.Uid.Value
			}
			if gotUID != c.uid || img.Username != c.username {
				t.Errorf("USER %q: uid=%d username=%q, want %d %q", c.user, gotUID, img.Username, c.uid, c.username)
			}
		})
	}
}

func TestPullWithAuth(t *testing.T) {
	r := busyboxRegistry(t, "docker.io/keelson/private:1")
	r.SetMiddleware(registry.BasicAuth("alice", "s3cret"))

	authFile := filepath.Join(harness.NewDir(t, "ktauth-"), "config.json")
	k := startWithRegistry(t, r, func(o *harness.Options) { o.AuthFile = authFile })
	ref := "docker.io/keelson/private:1"

	_, err := pull(t, k, ref, nil)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("no credentials: %v, want Unauthenticated saying authentication failed", err)
	}
	_, err = pull(t, k, ref, &runtimeapi.AuthConfig{Username: "alice", Password: "wrong"})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "authentication failed for registry docker.io") {
		t.Errorf("wrong password: %v, want Unauthenticated naming the host", err)
	}
	if _, err := pull(t, k, ref, &runtimeapi.AuthConfig{Username: "alice", Password: "s3cret"}); err != nil {
		t.Errorf("right password: %v", err)
	}
	k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	if _, err := pull(t, k, ref, &runtimeapi.AuthConfig{Auth: auth}); err != nil {
		t.Errorf("base64 auth: %v", err)
	}
	k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	// The auth file applies when the request carries none; the mirror is the host asked.
	file := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, r.Addr, auth)
	if err := os.WriteFile(authFile, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pull(t, k, ref, nil); err != nil {
		t.Errorf("credentials from the auth file: %v", err)
	}
}

func TestPullErrors(t *testing.T) {
	r, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// An index with only an arm64 image: nothing for this node.
	bb, _ := images.BusyboxImage()
	arm, err := images.WithConfig(bb, func(*v1.Config) {})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := arm.ConfigFile()
	cf = cf.DeepCopy()
	cf.Architecture = "arm64"
	if arm, err = mutate.ConfigFile(arm, cf); err != nil {
		t.Fatal(err)
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	if err := r.PushIndex("docker.io/keelson/armonly:1", idx); err != nil {
		t.Fatal(err)
	}
	k := startWithRegistry(t, r)
	// A host whose only mirror is a closed port.
	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	if err := registry.WriteHostsToml(k.CertsDir, "unreachable.example", "https://unreachable.example", "http://"+closed); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, want string
		code      codes.Code
	}{
		{"", "empty", codes.InvalidArgument},
		{"Not//A:Ref", "invalid image reference", codes.InvalidArgument},
		{"docker.io/keelson/nosuch:1", "not found", codes.NotFound},
		{"docker.io/keelson/armonly:1", "platform", codes.NotFound},
		{"unreachable.example/app:1", "unreachable.example", codes.Unavailable},
	} {
		_, err := pull(t, k, tc.ref, nil)
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pull %q: %v, want %v containing %q", tc.ref, err, tc.code, tc.want)
		}
	}
	list, err := k.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{})
	if err != nil || len(list.Images) != 0 {
		t.Errorf("failed pulls left images: %v %v", list, err)
	}
}

func TestPullProgressTimeout(t *testing.T) {
	r := busyboxRegistry(t, "docker.io/library/busybox:stall")
	k := startWithRegistry(t, r, func(o *harness.Options) { o.PullProgressTimeout = "2s" })

	t.Run("stalled pull is cancelled and leaves nothing", func(t *testing.T) {
		r.SetMiddleware(registry.StallBlobs(100 << 10))
		defer r.SetMiddleware(nil)
		start := time.Now()
		_, err := pull(t, k, "busybox:stall", nil)
		if err == nil || !strings.Contains(err.Error(), "no data for 2s") || !strings.Contains(err.Error(), r.Addr) {
			t.Fatalf("stalled pull: %v, want a progress timeout naming the registry", err)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("stall detected only after %s", took)
		}
		cl := k.ContainerdClient(t)
		st, err := cl.ContentStore().ListStatuses(harness.Ctx(t))
		if err != nil || len(st) != 0 {
			t.Errorf("partial downloads left: %v %v", st, err)
		}
		if img := imageStatus(t, k, "busybox:stall"); img != nil {
			t.Errorf("a stalled pull left an image: %v", img)
		}
	})
	t.Run("slow but moving pull succeeds", func(t *testing.T) {
		// About 10s for 50 MiB: longer than the 2s timeout, never silent for it. (With
		// containerd 2.x's Transfer service keelson sees bytes move a MiB at a time, so
		// "moving" means a MiB within the timeout: 0.2s here.)
		bench, err := images.BenchImages()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Push(images.BenchLarge, bench[images.BenchLarge]); err != nil {
			t.Fatal(err)
		}
		r.SetMiddleware(registry.SlowBlobs(512<<10, 100*time.Millisecond))
		defer r.SetMiddleware(nil)
		start := time.Now()
		if _, err := pull(t, k, images.BenchLarge, nil); err != nil {
			t.Fatalf("slow pull: %v", err)
		}
		if took := time.Since(start); took < 2*time.Second {
			t.Logf("slow pull took only %s; the timeout was not exercised", took)
		}
	})
}

func TestConcurrentPullsShareOneDownload(t *testing.T) {
	r, err := registry.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bb, _ := images.BusyboxImage()
	if err := r.Push("docker.io/library/busybox:1.36", bb); err != nil {
		t.Fatal(err)
	}
	layers, _ := bb.Layers()
	blobs := int64(len(layers) + 1) // layers and the config
	k := startWithRegistry(t, r)
	// Slow the blobs a little so the ten calls overlap.
	r.SetMiddleware(registry.SlowBlobs(256<<10, 50*time.Millisecond))
	before := r.BlobGets()
	var wg sync.WaitGroup
	ids := make([]string, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = pull(t, k, "busybox:1.36", nil)
		}()
	}
	wg.Wait()
	for i := range 10 {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("pull %d: %s %v", i, ids[i], errs[i])
		}
	}
	if got := r.BlobGets() - before; got != blobs {
		t.Errorf("blob downloads = %d, want %d (one per blob)", got, blobs)
	}
}

func TestImageFsInfoAndPinnedSandboxImage(t *testing.T) {
	k := startWithRegistry(t, reg)
	fsInfo := func() (uint64, uint64, string) {
		resp, err := k.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ImageFilesystems) != 1 || len(resp.ContainerFilesystems) != 1 {
			t.Fatalf("ImageFsInfo = %v", resp)
		}
		fs := resp.ImageFilesystems[0]
		return fs.UsedBytes.GetValue(), fs.InodesUsed.GetValue(), fs.FsId.GetMountpoint()
	}
	bytes0, inodes0, mp := fsInfo()
	if !strings.HasPrefix(mp, k.RootDir) || !strings.Contains(mp, "overlayfs") {
		t.Errorf("mountpoint = %q, want the overlayfs snapshotter under %s", mp, k.RootDir)
	}
	mustPull(t, k, images.Busybox)
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, i, _ := fsInfo()
		if b > bytes0 && i > inodes0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ImageFsInfo did not grow after a pull: bytes %d→%d inodes %d→%d", bytes0, b, inodes0, i)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The sandbox image is pinned; others are not. Removing it is still allowed.
	pauseID := mustPull(t, k, images.Pause)
	if img := imageStatus(t, k, images.Pause); img == nil || !img.Pinned {
		t.Errorf("sandbox image not pinned: %+v", img)
	}
	if img := imageStatus(t, k, images.Busybox); img == nil || img.Pinned {
		t.Errorf("busybox pinned: %+v", img)
	}
	list, _ := k.Images.ListImages(harness.Ctx(t), &runtimeapi.ListImagesRequest{})
	for _, img := range list.Images {
		if (img.Id == pauseID) != img.Pinned {
			t.Errorf("ListImages pinned flag wrong for %v", img.RepoTags)
		}
	}
	if _, err := k.Images.RemoveImage(harness.Ctx(t), &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: pauseID}}); err != nil {
		t.Errorf("removing the pinned sandbox image: %v", err)
	}
	if img := imageStatus(t, k, images.Pause); img != nil {
		t.Errorf("sandbox image still there after RemoveImage")
	}
}
