package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// The images Kubernetes' CRI validation suite (cri-tools' critest) pulls, under their
// real names. Built locally like the others; see CRIToolsImages.
const (
	CRIToolsBusybox    = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	CRIToolsNginx      = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
	CRIToolsHttpd      = "registry.k8s.io/e2e-test-images/httpd:2.4.39-4"
	CRIToolsNoNewPrivs = "registry.k8s.io/e2e-test-images/nonewprivs:1.3"
	// criToolsRegistry is where cri-tools publishes its own test images
	// (cri-tools/images/build).
	criToolsRegistry = "gcr.io/k8s-staging-cri-tools/"
)

// CRIToolsBusyboxBinary is Debian's dynamically linked busybox (package busybox, which
// conflicts with busybox-static and so is not installed: hack/build-cri-tools.sh
// extracts it here). critest needs a shell that runs commands from the file system:
// the MaskedPaths spec masks /bin/ls and expects `sh -c ls` to fail, which
// busybox-static's shell, running its applets without exec, never does.
var CRIToolsBusyboxBinary = "/opt/keelson/cri-tools/busybox"

// Users and groups of Docker Hub's busybox image, which the cri-tools images start from.
const (
	critoolsPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	critoolsGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`
)

// CRIToolsBusyboxImage is what registry.k8s.io/e2e-test-images/busybox and the
// cri-tools images are built from: Docker Hub's busybox layout (every applet a hard
// link in /bin, its passwd and group) with Debian's dynamically linked busybox and the
// C library it needs; the few applets only busybox-static has (pgrep, ...) are hard
// links to a copy of it, and ipcs and pgrep, which neither has, are small Go programs
// (test/images/ipcs, test/images/pgrep).
func CRIToolsBusyboxImage() (v1.Image, error) {
	return cached("critools-busybox", func() (v1.Image, error) {
		return e2eBusyboxImage(CRIToolsBusyboxBinary, "Debian's dynamic busybox: run hack/build-cri-tools.sh")
	})
}

// e2eBusyboxImage lays out the busybox binary dynBinary (dynamically linked: its
// applets are run from the file system) as the e2e busybox images are; missing
// names which binary to build and how.
func e2eBusyboxImage(dynBinary, missing string) (v1.Image, error) {
	dyn, err := os.ReadFile(dynBinary)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, missing)
	}
	static, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("%w (install Debian's busybox-static: hack/install-deps.sh)", err)
	}
	dynApplets, err := applets(dynBinary)
	if err != nil {
		return nil, err
	}
	staticApplets, err := applets(BusyboxBinary)
	if err != nil {
		return nil, err
	}
	files := []File{
		{Path: "bin/busybox", Data: dyn, Mode: 0o755},
		{Path: "bin/busybox-static", Data: static, Mode: 0o755},
		{Path: "etc/passwd", Data: []byte(critoolsPasswd)},
		{Path: "etc/group", Data: []byte(critoolsGroup)},
		{Path: "etc/nsswitch.conf", Data: []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n")},
		{Path: "tmp", Dir: true, Mode: 0o1777},
		{Path: "root", Dir: true, Mode: 0o700},
		{Path: "home", Dir: true},
		{Path: "var/spool/mail", Dir: true},
		{Path: "var/www", Dir: true},
		{Path: "usr/sbin", Dir: true},
	}
	have := map[string]bool{"busybox": true}
	for _, a := range dynApplets {
		if !have[a] {
			have[a] = true
			files = append(files, File{Path: "bin/" + a, Hardlink: "bin/busybox"})
		}
	}
	for _, a := range staticApplets {
		if !have[a] {
			have[a] = true
			files = append(files, File{Path: "bin/" + a, Hardlink: "bin/busybox-static"})
		}
	}
	for _, tool := range []string{"ipcs", "pgrep"} {
		if have[tool] {
			continue
		}
		bin, err := buildGo(tool)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: "bin/" + tool, Data: bin, Mode: 0o755})
	}
	libs, err := sharedLibraries(dynBinary)
	if err != nil {
		return nil, err
	}
	files = append(files, libs...)
	return shellImage(files)
}

// applets lists the applet names of a busybox binary.
func applets(bin string) ([]string, error) {
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", bin, err)
	}
	return strings.Fields(string(out)), nil
}

var lddPath = regexp.MustCompile(`(?m)(?:=>\s+)?(/\S+)\s+\(0x`)

// sharedLibraries returns the files of the libraries and dynamic loader bin needs
// (from ldd), at the paths the loader looks for them, links kept as links.
func sharedLibraries(bin string) ([]File, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var files []File
	seen := map[string]bool{}
	for _, m := range lddPath.FindAllStringSubmatch(string(out), -1) {
		p := m[1]
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, err
		}
		if p != real && !seen[p] {
			seen[p] = true
			files = append(files, File{Path: p, Linkname: real})
		}
		if !seen[real] {
			seen[real] = true
			data, err := os.ReadFile(real)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: real, Data: data, Mode: 0o755})
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("ldd %s listed no libraries: %s", bin, out)
	}
	return files, nil
}

// addFiles returns base with one more layer holding files, its config changed by edit.
func addFiles(base v1.Image, files []File, edit func(*v1.Config)) (v1.Image, error) {
	img := base
	if len(files) > 0 {
		layer, err := Layer(files)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(base, layer); err != nil {
			return nil, err
		}
	}
	if edit == nil {
		return img, nil
	}
	return WithConfig(img, edit)
}

// webServerImage is the busybox base with test/images/webserver installed at path,
// run as cmd, listening on port.
func webServerImage(path string, cmd []string, port string) (v1.Image, error) {
	base, err := CRIToolsBusyboxImage()
	if err != nil {
		return nil, err
	}
	bin, err := buildGo("webserver")
	if err != nil {
		return nil, err
	}
	return addFiles(base, []File{
		{Path: path, Data: bin, Mode: 0o755},
		{Path: "var/run", Dir: true},
	}, func(c *v1.Config) {
		c.Cmd = cmd
		c.Env = []string{
			// Its directory first, as in the httpd image: busybox has an httpd too.
			"PATH=" + filepath.Dir("/"+path) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"PORT=" + port,
		}
		c.ExposedPorts = map[string]struct{}{port + "/tcp": {}}
		c.StopSignal = "SIGTERM"
	})
}

// CRIToolsImages returns every image critest (cri-tools v1.37) pulls, by name, built
// as cri-tools/images/build and the Kubernetes e2e test images build them, except for
// the contents the specs never look at:
//
//   - e2e busybox: CRIToolsBusyboxImage.
//   - e2e nginx and httpd, cri-tools hostnet-nginx-<arch>: test/images/webserver as
//     /usr/sbin/nginx (port 80), /usr/local/apache2/bin/httpd (port 80) and nginx on
//     port 12003.
//   - e2e nonewprivs: a setuid-root program printing "Effective uid: N".
//   - test-image-user-*: busybox with USER 1002, www-data, 1003:1004, www-data:1004.
//   - test-image-predefined-group: busybox with default-user (1000:1000) in group
//     group-defined-in-image (50000), USER 1000.
//   - test-image-latest, -1, -2, -3, test-image-tag:test and :all: busybox with an
//     empty file named after the image, so each is a different image;
//     test-image-tags:1, :2, :3: one image under three tags.
//   - registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9: one image (the test pause
//     image labelled 3.9, so it is not the sandbox image 3.10) under two registries.
//
// test-image-digest@sha256:<fixed digest> cannot be rebuilt: its digest is fixed.
func CRIToolsImages() (map[string]v1.Image, error) {
	base, err := CRIToolsBusyboxImage()
	if err != nil {
		return nil, err
	}
	builds := map[string]func() (v1.Image, error){
		CRIToolsBusybox: CRIToolsBusyboxImage,
		CRIToolsNginx: func() (v1.Image, error) {
			return webServerImage("usr/sbin/nginx", []string{"nginx", "-g", "daemon off;"}, "80")
		},
		CRIToolsHttpd: func() (v1.Image, error) {
			return webServerImage("usr/local/apache2/bin/httpd", []string{"httpd", "-DFOREGROUND"}, "80")
		},
		criToolsRegistry + "hostnet-nginx-" + runtime.GOARCH + ":latest": func() (v1.Image, error) {
			return webServerImage("usr/sbin/nginx", []string{"nginx", "-g", "daemon off;"}, "12003")
		},
		CRIToolsNoNewPrivs: func() (v1.Image, error) {
			bin, err := buildGo("nonewprivs")
			if err != nil {
				return nil, err
			}
			return addFiles(base, []File{{Path: "usr/local/bin/nnp", Data: bin, Mode: 0o4755}}, func(c *v1.Config) {
				c.Entrypoint, c.Cmd = []string{"/usr/local/bin/nnp"}, nil
			})
		},
		criToolsRegistry + "test-image-predefined-group:latest": func() (v1.Image, error) {
			return addFiles(base, []File{
				{Path: "etc/passwd", Data: []byte(critoolsPasswd + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")},
				{Path: "etc/group", Data: []byte(critoolsGroup + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")},
				{Path: "home/default-user", Dir: true},
			}, func(c *v1.Config) { c.User = "1000" })
		},
		"registry.k8s.io/pause:3.9": func() (v1.Image, error) {
			p, err := PauseImage()
			if err != nil {
				return nil, err
			}
			return WithConfig(p, func(c *v1.Config) { c.Labels = map[string]string{"version": "3.9"} })
		},
	}
	for n, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:1004",
		"test-image-user-username-group": "www-data:1004",
	} {
		builds[criToolsRegistry+n+":latest"] = func() (v1.Image, error) {
			return addFiles(base, nil, func(c *v1.Config) { c.User = user })
		}
	}
	marked := func(file string) func() (v1.Image, error) {
		return func() (v1.Image, error) { return addFiles(base, []File{{Path: file}}, nil) }
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest"} {
		builds[criToolsRegistry+n+":latest"] = marked(n)
	}
	for _, tag := range []string{"test", "all"} {
		builds[criToolsRegistry+"test-image-tag:"+tag] = marked(tag)
	}
	same := marked("same-image")
	for _, tag := range []string{"1", "2", "3"} {
		builds[criToolsRegistry+"test-image-tags:"+tag] = same
	}

	out := map[string]v1.Image{}
	names := make([]string, 0, len(builds))
	for n := range builds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		img, err := cached("critools:"+n, builds[n])
		if err != nil {
			return nil, err
		}
		out[n] = img
	}
	out["k8s.gcr.io/pause:3.9"] = out["registry.k8s.io/pause:3.9"]
	return out, nil
}
