package images

import (
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
