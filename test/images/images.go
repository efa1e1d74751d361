// Package images builds keelson's test images locally and reproducibly (same inputs,
// same digests): busybox from Debian's busybox-static, and tiny static Go binaries for
// pause and an echo server. Tests serve them from a registry on 127.0.0.1 (see
// test/registry) under the names real clusters use.
package images

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names under which tests and hack/ publish the images.
const (
	Pause      = "registry.k8s.io/pause:3.10"
	Busybox    = "docker.io/library/busybox:1.36"
	EchoServer = "docker.io/keelson/echoserver:1.0"
)

// BusyboxBinary is Debian's static busybox (package busybox-static).
var BusyboxBinary = "/bin/busybox"

// epoch is every file's and image's timestamp, so builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of a layer.
type File struct {
	Path     string // relative, no leading slash
	Mode     int64  // permission bits; dirs and symlinks get defaults
	Data     []byte
	Linkname string // for symlinks
	// Hardlink, when set, makes this entry a hard link to that path (relative, no
	// leading slash), as the busybox images of Docker Hub link their applets.
	Hardlink string
	Dir      bool
	// Type, when set, is a special file's tar type (tar.TypeFifo, tar.TypeChar)
	// with its device numbers.
	Type               byte
	Devmajor, Devminor int64
}

// Layer builds a reproducible tar layer from files; parent directories are added.
func Layer(files []File) (v1.Layer, error) {
	all := map[string]File{}
	for _, f := range files {
		f.Path = strings.TrimPrefix(f.Path, "/")
		all[f.Path] = f
		for d := filepath.Dir(f.Path); d != "." && d != "/"; d = filepath.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = File{Path: d, Dir: true}
			}
		}
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	// A hard link's target must be in the archive before the link.
	sort.SliceStable(paths, func(i, j int) bool {
		return all[paths[i]].Hardlink == "" && all[paths[j]].Hardlink != ""
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := all[p]
		h := &tar.Header{Name: p, ModTime: epoch, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, p+"/", 0o755
			if f.Mode != 0 {
				h.Mode = f.Mode
			}
		case f.Hardlink != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeLink, strings.TrimPrefix(f.Hardlink, "/"), 0o755
		case f.Linkname != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Linkname, 0o777
		case f.Type != 0:
			h.Typeflag, h.Devmajor, h.Devminor, h.Mode = f.Type, f.Devmajor, f.Devminor, 0o644
		default:
			h.Typeflag, h.Size, h.Mode = tar.TypeReg, int64(len(f.Data)), f.Mode
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// Image stacks layers into an OCI image for linux/<GOARCH> with the given config.
func Image(cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = runtime.GOARCH, "linux"
	cf.Config = cfg
	cf.Created = v1.Time{Time: epoch}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	return img, nil
}

// baseFiles are what every image carries: users and groups for run-as tests, /tmp.
func baseFiles() []File {
	return []File{
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nkeelson:x:1234:5678:keelson test user:/home/keelson:/bin/sh\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\nkeelson:x:5678:\nextra:x:4242:keelson\n")},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700},
		{Path: "home/keelson", Dir: true},
	}
}

type onceImage struct {
	once sync.Once
	img  v1.Image
	err  error
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*onceImage{}
)

// cached builds each image once per process. The lock is not held while building:
// one image may be built on another.
func cached(name string, build func() (v1.Image, error)) (v1.Image, error) {
	cacheMu.Lock()
	o, ok := cache[name]
	if !ok {
		o = &onceImage{}
		cache[name] = o
	}
	cacheMu.Unlock()
	o.once.Do(func() {
		o.img, o.err = build()
		if o.err != nil {
			o.err = fmt.Errorf("building test image %s: %w", name, o.err)
		}
	})
	return o.img, o.err
}

// BusyboxImage is Debian's static busybox with every applet linked, run as root, Cmd sh.
func BusyboxImage() (v1.Image, error) {
	return cached("busybox", func() (v1.Image, error) {
		bin, err := os.ReadFile(BusyboxBinary)
		if err != nil {
			return nil, fmt.Errorf("%w (install Debian's busybox-static: hack/install-deps.sh)", err)
		}
		out, err := exec.Command(BusyboxBinary, "--list-full").Output()
		if err != nil {
			return nil, fmt.Errorf("busybox --list-full: %w", err)
		}
		files := append(baseFiles(), File{Path: "bin/busybox", Data: bin, Mode: 0o755})
		for _, applet := range strings.Fields(string(out)) {
			if applet == "bin/busybox" {
				continue
			}
			files = append(files, File{Path: applet, Linkname: "/bin/busybox"})
		}
		return shellImage(files)
	})
}

// PauseImage holds only /pause (a static Go binary), run as 65535 like the real one.
func PauseImage() (v1.Image, error) {
	return cached("pause", func() (v1.Image, error) {
		bin, err := buildGo("pause")
		if err != nil {
			return nil, err
		}
		layer, err := Layer([]File{{Path: "pause", Data: bin, Mode: 0o755}})
		if err != nil {
			return nil, err
		}
		return Image(v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, layer)
	})
}

// EchoServerImage is busybox plus /echoserver (HTTP :8080, TCP echo :9000) as entrypoint.
func EchoServerImage() (v1.Image, error) {
	return cached("echoserver", func() (v1.Image, error) {
		base, err := BusyboxImage()
		if err != nil {
			return nil, err
		}
		bin, err := buildGo("echoserver")
		if err != nil {
			return nil, err
		}
		layer, err := Layer([]File{{Path: "echoserver", Data: bin, Mode: 0o755}})
		if err != nil {
			return nil, err
		}
		img, err := mutate.AppendLayers(base, layer)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.Config.Entrypoint, cf.Config.Cmd = []string{"/echoserver"}, nil
		cf.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}, "9000/tcp": {}}
		return mutate.ConfigFile(img, cf)
	})
}

// WithConfig returns img with its config changed by edit (e.g. User for run-as tests).
func WithConfig(img v1.Image, edit func(*v1.Config)) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	edit(&cf.Config)
	return mutate.ConfigFile(img, cf)
}

// HostileImage is busybox whose /etc/passwd is replaced by file: what a pod author
// could push to make a runtime read a FIFO, a device or a huge file as root.
func HostileImage(file File) (v1.Image, error) {
	base, err := BusyboxImage()
	if err != nil {
		return nil, err
	}
	file.Path = "etc/passwd"
	top, err := Layer([]File{file})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(base, top)
}

// All returns the standard test images by name.
func All() (map[string]v1.Image, error) {
	out := map[string]v1.Image{}
	for name, build := range map[string]func() (v1.Image, error){
		Pause: PauseImage, Busybox: BusyboxImage, EchoServer: EchoServerImage,
	} {
		img, err := build()
		if err != nil {
			return nil, err
		}
		out[name] = img
	}
	return out, nil
}

// buildGo compiles test/images/<name> into a static, stripped, reproducible binary.
func buildGo(name string) ([]byte, error) {
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), name)
	dir, err := os.MkdirTemp("", "keelson-img-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, name)
	cmd := exec.Command(goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", name, err, b)
	}
	return os.ReadFile(out)
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// shellImage is an image of files whose command is sh, with the usual PATH.
func shellImage(files []File) (v1.Image, error) {
	layer, err := Layer(files)
	if err != nil {
		return nil, err
	}
	return Image(v1.Config{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, layer)
}

// Pull benchmark images: content no other image shares, so a pull downloads it all.
const (
	BenchSmall = "docker.io/keelson/bench-small:1" // one layer of 1 MiB
	BenchLarge = "docker.io/keelson/bench-large:1" // five layers of 10 MiB
)

// BenchImages builds the pull benchmark's images: random (incompressible) file
// content, so every pull moves the bytes the name promises.
func BenchImages() (map[string]v1.Image, error) {
	build := func(layers, size int) (v1.Image, error) {
		var ls []v1.Layer
		for i := range layers {
			data := make([]byte, size)
			if _, err := rand.Read(data); err != nil {
				return nil, err
			}
			l, err := Layer([]File{{Path: fmt.Sprintf("data/%d.bin", i), Data: data}})
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
		}
		return Image(v1.Config{Cmd: []string{"/bin/true"}}, ls...)
	}
	small, err := build(1, 1<<20)
	if err != nil {
		return nil, err
	}
	large, err := build(5, 10<<20)
	if err != nil {
		return nil, err
	}
	return map[string]v1.Image{BenchSmall: small, BenchLarge: large}, nil
}
