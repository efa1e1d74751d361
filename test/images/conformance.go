package images

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AgnhostBinary is the Kubernetes e2e specs' test binary, built from k8s.io/kubernetes
// at the pinned release by hack/build-k8s.sh.
var AgnhostBinary = "/opt/keelson/k8s/bin/agnhost"

// ConformanceBusyboxBinary is upstream's busybox at the e2e images' version, built by
// hack/build-k8s.sh (Debian's drops environment variables whose names are not shell
// identifiers, such as a ConfigMap's data-1, from the commands its shell runs; the
// upstream one passes them, and the specs check that).
var ConformanceBusyboxBinary = "/opt/keelson/k8s/bin/busybox"

// ConformanceBusyboxImage is the e2e busybox image with upstream's busybox.
func ConformanceBusyboxImage() (v1.Image, error) {
	return cached("conformance-busybox", func() (v1.Image, error) {
		return e2eBusyboxImage(ConformanceBusyboxBinary, "upstream busybox: run hack/build-k8s.sh")
	})
}

// The images the Kubernetes conformance specs (test/e2e of v1.36, test/utils/image's
// manifest) pull for the node specs, under their real names.
const (
	ConformanceAgnhost     = "registry.k8s.io/e2e-test-images/agnhost:2.63.0"
	ConformanceBusybox     = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	ConformanceNginx       = "registry.k8s.io/e2e-test-images/nginx:1.15-4"
	ConformanceNginxNew    = "registry.k8s.io/e2e-test-images/nginx:1.27-0"
	ConformanceAgnhostPrev = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	ConformanceNonRoot     = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	ConformancePause       = "registry.k8s.io/pause:3.10.2"
	ConformanceNoNewPrivs  = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	ConformanceKitten      = "registry.k8s.io/e2e-test-images/kitten:1.8"
)

// ConformanceImages returns the images of the Kubernetes conformance specs, built as
// the CRI validation suite's are (CRIToolsImages):
//
//   - busybox: ConformanceBusyboxImage (CRIToolsBusyboxImage's layout, upstream's busybox).
//   - agnhost: that busybox (the upstream image is alpine plus a few network tools)
//     with this machine's curl and bash, /agnhost as entrypoint, `pause` as command, and the user and group the
//     upstream image defines (user-defined-in-image 1000, group-defined-in-image 50000).
//   - agnhost's previous version (2.55): the same image.
//   - nginx: test/images/webserver on port 80 as /usr/sbin/nginx.
//   - nonroot: busybox run as 1234:1234, as upstream.
//   - nonewprivs: busybox with a setuid-root program printing "Effective uid: N" as
//     nnp, its command (test/images/nonewprivs).
//   - kitten (the image volume spec's volume): agnhost plus /data.json naming
//     kitten.jpg, a stand-in kitten.jpg, and the os-release of the upstream image's
//     Alpine base (the spec reads both files through the volume).
//   - pause: the test pause image.
func ConformanceImages() (map[string]v1.Image, error) {
	base, err := ConformanceBusyboxImage()
	if err != nil {
		return nil, err
	}
	nginx := func() (v1.Image, error) {
		return cached("conformance-nginx", func() (v1.Image, error) {
			return webServerImage("usr/sbin/nginx", []string{"nginx", "-g", "daemon off;"}, "80")
		})
	}
	builds := map[string]func() (v1.Image, error){
		ConformanceBusybox:     ConformanceBusyboxImage,
		ConformanceAgnhost:     func() (v1.Image, error) { return agnhostImage(base) },
		ConformanceNginx:       nginx,
		ConformanceNginxNew:    nginx,
		ConformanceAgnhostPrev: func() (v1.Image, error) { return agnhostImage(base) },
		ConformanceNonRoot: func() (v1.Image, error) {
			return addFiles(base, nil, func(c *v1.Config) { c.User = "1234:1234" })
		},
		ConformancePause: PauseImage,
		ConformanceNoNewPrivs: func() (v1.Image, error) {
			bin, err := buildGo("nonewprivs")
			if err != nil {
				return nil, err
			}
			return addFiles(base, []File{{Path: "usr/local/bin/nnp", Data: bin, Mode: 0o4755}}, func(c *v1.Config) {
				c.Cmd = []string{"nnp"}
			})
		},
		ConformanceKitten: func() (v1.Image, error) {
			agnhost, err := agnhostImage(base)
			if err != nil {
				return nil, err
			}
			return addFiles(agnhost, []File{
				{Path: "data.json", Data: []byte("{\n  \"image\": \"kitten.jpg\"\n}\n")},
				{Path: "kitten.jpg", Data: []byte("not a real JPEG: a stand-in for the upstream kitten\n")},
				{Path: "etc/os-release", Data: []byte("NAME=\"Alpine Linux\"\nID=alpine\nPRETTY_NAME=\"Alpine Linux (keelson test stand-in)\"\n")},
			}, func(c *v1.Config) { c.Entrypoint, c.Cmd = []string{"/agnhost"}, []string{"test-webserver"} })
		},
	}
	out := map[string]v1.Image{}
	for n, build := range builds {
		img, err := cached("conformance:"+n, build)
		if err != nil {
			return nil, err
		}
		out[n] = img
	}
	return out, nil
}

func agnhostImage(base v1.Image) (v1.Image, error) {
	return cached("conformance-agnhost", func() (v1.Image, error) { return buildAgnhost(base) })
}

func buildAgnhost(base v1.Image) (v1.Image, error) {
	bin, err := os.ReadFile(AgnhostBinary)
	if err != nil {
		return nil, fmt.Errorf("%w (agnhost: run hack/build-k8s.sh)", err)
	}
	files := []File{
		{Path: "agnhost", Data: bin, Mode: 0o755},
		{Path: "agnhost-2", Linkname: "agnhost"},
		{Path: "uploads", Dir: true},
		{Path: "etc/passwd", Data: []byte(critoolsPasswd + "user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n")},
		{Path: "etc/group", Data: []byte(critoolsGroup + "user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")},
		{Path: filepath.Join("home", "user-defined-in-image"), Dir: true},
	}
	// Specs run curl (lifecycle hooks) and bash (probes) in it, as the upstream image
	// has them: this machine's, with their libraries.
	for _, tool := range []struct{ bin, at string }{{"/usr/bin/curl", "usr/bin/curl"}, {"/bin/bash", "bin/bash"}} {
		data, err := os.ReadFile(tool.bin)
		if err != nil {
			return nil, fmt.Errorf("%w (install Debian's curl and bash)", err)
		}
		libs, err := sharedLibraries(tool.bin)
		if err != nil {
			return nil, err
		}
		files = append(append(files, File{Path: tool.at, Data: data, Mode: 0o755}), libs...)
	}
	return addFiles(base, files, func(c *v1.Config) {
		c.Entrypoint, c.Cmd = []string{"/agnhost"}, []string{"pause"}
		c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}
	})
}
