package images

import (
	"debug/buildinfo"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CoreDNSBinary is the coredns hack/build-k8s.sh builds (only the plugins a cluster's
// Corefile uses). Only the cluster test needs it, so it is not one of All's images.
var CoreDNSBinary = "/opt/keelson/k8s/bin/coredns"

// coreDNSModule is the module whose version names the image.
const coreDNSModule = "github.com/coredns/coredns"

// CoreDNSImage is CoreDNSBinary as /coredns, the entrypoint, in an image named as
// registry.k8s.io names the release the binary was built from (the tag follows the
// binary, so it cannot drift from hack/versions.env).
func CoreDNSImage() (string, v1.Image, error) {
	info, err := buildinfo.ReadFile(CoreDNSBinary)
	if err != nil {
		return "", nil, fmt.Errorf("%w (run make k8s)", err)
	}
	version := ""
	for _, d := range info.Deps {
		if d.Path == coreDNSModule {
			version = d.Version
		}
	}
	if version == "" {
		return "", nil, fmt.Errorf("%s is not built from %s", CoreDNSBinary, coreDNSModule)
	}
	img, err := cached("coredns", func() (v1.Image, error) {
		bin, err := os.ReadFile(CoreDNSBinary)
		if err != nil {
			return nil, err
		}
		layer, err := Layer(append(baseFiles(), File{Path: "coredns", Data: bin, Mode: 0o755}))
		if err != nil {
			return nil, err
		}
		return Image(v1.Config{Entrypoint: []string{"/coredns"}}, layer)
	})
	return "registry.k8s.io/coredns/coredns:" + version, img, err
}
