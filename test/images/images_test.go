package images

import (
	"os"
	"testing"
)

// The images are reproducible: building twice gives the same digests.
func TestImagesAreReproducible(t *testing.T) {
	first, err := All()
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for name, img := range first {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[name] = d.String()
	}
	cacheMu.Lock()
	cache = map[string]*onceImage{}
	cacheMu.Unlock()
	second, err := All()
	if err != nil {
		t.Fatal(err)
	}
	for name, img := range second {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if d.String() != digests[name] {
			t.Errorf("%s: digest %s then %s", name, digests[name], d)
		}
	}
	bb := first[Busybox]
	cf, err := bb.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || len(cf.Config.Cmd) == 0 || cf.Config.Cmd[0] != "sh" {
		t.Errorf("busybox config: %+v", cf)
	}
}

// critest's images: tags the suite expects to name one image do, the others differ,
// and the pause image of the "same image from two registries" specs is not the
// sandbox image.
func TestCRIToolsImages(t *testing.T) {
	if _, err := os.Stat(CRIToolsBusyboxBinary); err != nil {
		t.Skipf("%v: run hack/build-cri-tools.sh", err)
	}
	imgs, err := CRIToolsImages()
	if err != nil {
		t.Fatal(err)
	}
	digest := func(name string) string {
		img, ok := imgs[name]
		if !ok {
			t.Fatalf("no image %s", name)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	const r = "gcr.io/k8s-staging-cri-tools/"
	if a, b, c := digest(r+"test-image-tags:1"), digest(r+"test-image-tags:2"), digest(r+"test-image-tags:3"); a != b || b != c {
		t.Errorf("test-image-tags:1,2,3 differ: %s %s %s", a, b, c)
	}
	if digest("registry.k8s.io/pause:3.9") != digest("k8s.gcr.io/pause:3.9") {
		t.Error("pause:3.9 differs between registries")
	}
	pause, err := PauseImage()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pause.Digest(); d.String() == digest("registry.k8s.io/pause:3.9") {
		t.Error("pause:3.9 is the sandbox image pause:3.10")
	}
	seen := map[string]string{}
	for _, n := range []string{"test-image-1:latest", "test-image-2:latest", "test-image-3:latest", "test-image-latest:latest", "test-image-tag:test", "test-image-tag:all"} {
		d := digest(r + n)
		if other, ok := seen[d]; ok {
			t.Errorf("%s and %s are the same image", n, other)
		}
		seen[d] = n
	}
	cf, err := imgs[r+"test-image-predefined-group:latest"].ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "1000" {
		t.Errorf("predefined-group user %q", cf.Config.User)
	}
}
