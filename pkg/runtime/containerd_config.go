package runtime

import (
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// The containerd plugins keelson turns off in the containerd it supervises: the
// built-in CRI (keelson is the CRI), NRI (it would listen on the host-wide
// /var/run/nri/nri.sock) and "opt" (it would create /opt/containerd).
var disabledPlugins = map[int][]string{
	1: {"io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"},
	2: {
		"io.containerd.grpc.v1.cri",
		"io.containerd.cri.v1.images",
		"io.containerd.cri.v1.runtime",
		"io.containerd.podsandbox.controller.v1.podsandbox",
		"io.containerd.nri.v1.nri",
		"io.containerd.internal.v1.opt",
	},
}

var versionRE = regexp.MustCompile(`\sv?(\d+)\.(\d+)\.(\d+)\S*`)

// BinaryMajorVersion runs `containerd --version` and returns the major version (1 or 2)
// and the version string.
func BinaryMajorVersion(binary string) (int, string, error) {
	out, err := exec.Command(binary, "--version").Output()
	if err != nil {
		return 0, "", fmt.Errorf("running %s --version: %w (is containerd installed? hack/install-deps.sh installs it)", binary, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return 0, "", fmt.Errorf("cannot find a version in %q from %s --version", strings.TrimSpace(string(out)), binary)
	}
	major, _ := strconv.Atoi(m[1])
	if major != 1 && major != 2 {
		return 0, "", fmt.Errorf("containerd %s is not supported (1.6+ and 2.x are)", strings.TrimSpace(m[0]))
	}
	return major, strings.TrimSpace(m[0]), nil
}

// ChildConfig is what keelson decides about the containerd it supervises.
type ChildConfig struct {
	Root      string // containerd's persistent root
	State     string // containerd's runtime state
	Address   string // gRPC socket
	LogLevel  string
	SocketDir string // shim sockets (containerd 2.x only; empty = containerd's default)
	// The Transfer service's pulls (containerd 2.x): layers downloaded at once across
	// all pulls (0: containerd's default), and the snapshotter it unpacks into for
	// this platform (empty: containerd's default).
	MaxConcurrentDownloads int
	Snapshotter            string
	Platform               string
}

// Render returns the containerd config file for a containerd of the given major
// version: config format 2 for 1.x, format 3 for 2.x (later 2.x releases migrate it
// in memory, with a warning; format 4 moved the listener addresses into plugin
// sections). imports is empty so nothing from /etc/containerd leaks into keelson's
// containerd.
func (c ChildConfig) Render(major int) string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "version = %d\n", map[int]int{1: 2, 2: 3}[major])
	fmt.Fprintf(&b, "root = %s\nstate = %s\nimports = []\n", q(c.Root), q(c.State))
	quoted := make([]string, 0, len(disabledPlugins[major]))
	for _, p := range disabledPlugins[major] {
		quoted = append(quoted, q(p))
	}
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n\n", strings.Join(quoted, ", "))
	fmt.Fprintf(&b, "[grpc]\n  address = %s\n\n", q(c.Address))
	fmt.Fprintf(&b, "[ttrpc]\n  address = %s\n\n", q(c.Address+".ttrpc"))
	fmt.Fprintf(&b, "[debug]\n  address = \"\"\n  level = %s\n\n", q(c.LogLevel))
	b.WriteString("[metrics]\n  address = \"\"\n")
	if major == 2 && c.SocketDir != "" {
		fmt.Fprintf(&b, "\n[plugins.'io.containerd.shim.v1.manager']\n  socket_dir = %s\n", q(c.SocketDir))
	}
	if major == 2 && (c.MaxConcurrentDownloads > 0 || c.Snapshotter != "") {
		b.WriteString("\n[plugins.'io.containerd.transfer.v1.local']\n")
		if c.MaxConcurrentDownloads > 0 {
			fmt.Fprintf(&b, "  max_concurrent_downloads = %d\n", c.MaxConcurrentDownloads)
		}
		if c.Snapshotter != "" && c.Platform != "" {
			fmt.Fprintf(&b, "  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]\n    platform = %s\n    snapshotter = %s\n", q(c.Platform), q(c.Snapshotter))
		}
	}
	return b.String()
}
