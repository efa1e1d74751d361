// Package config is keelson's TOML configuration: the schema with its defaults and
// documentation, loading with strict key checking, and validation.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// DefaultRuntimeType is the containerd shim used by handlers that name none.
const DefaultRuntimeType = "io.containerd.runc.v2"

// DefaultMetricsAddress is where Prometheus metrics are served by default.
const DefaultMetricsAddress = "127.0.0.1:9469"

// DefaultPath is where keelson looks for its config file when --config is not given.
const DefaultPath = "/etc/keelson/config.toml"

// Config is the whole keelson configuration. Every key has a default (see Default) and
// a comment that `keelson config default` prints.
type Config struct {
	RootDir  string `toml:"root_dir" comment:"Persistent state (the supervised containerd's root, keelson's records). Survives reboots."`
	StateDir string `toml:"state_dir" comment:"Runtime state (lock file, status files, network namespaces, FIFOs). Lost on reboot; must not be shared by two keelsons."`
	LogLevel int    `toml:"log_level" comment:"klog verbosity: 0 start-up and errors, 2 every mutating call, 4 every call, 6 full requests (credentials and environment values redacted). Reloaded on SIGHUP."`
	// GCInterval is how often the background collection runs.
	GCInterval Duration `toml:"gc_interval" comment:"How often keelson collects what no pod owns: CNI attachments of sandboxes that are gone (CNI DEL, then the CNI GC verb with the valid attachments) and containerd shims that serve no task. Also done at start."`
	// StatsInterval is how often every task's stats are sampled in the background.
	StatsInterval Duration `toml:"stats_interval" comment:"How often keelson samples every container's and pod's CPU, memory, processes and network (kubelet asks every 10s). A stats call also samples on demand what is more than a second old, so crictl stats shows current CPU use; writable layers are measured every six intervals. Reloaded on SIGHUP."`

	GRPC       GRPC       `toml:"grpc" comment:"The CRI gRPC endpoint kubelet and crictl talk to."`
	Containerd Containerd `toml:"containerd" comment:"The containerd keelson drives."`
	Runtime    Runtime    `toml:"runtime" comment:"OCI runtimes (RuntimeClass handlers) and cgroups."`
	CNI        CNI        `toml:"cni" comment:"Pod networking through CNI plugins."`
	Images     Images     `toml:"images" comment:"Image pulls and the sandbox (pause) image."`
	Streaming  Streaming  `toml:"streaming" comment:"The HTTP server behind Exec, Attach and PortForward: those RPCs return a URL on it (with a single-use token valid for a minute) that kubelet or crictl connect to over SPDY or WebSocket."`
	CDI        CDI        `toml:"cdi" comment:"Devices by CDI name (Container Device Interface): what device plugins and DRA drivers hand to containers."`
	NRI        NRI        `toml:"nri" comment:"NRI (Node Resource Interface) plugins: they see pods and containers come and go and may adjust containers before they are created."`
	Metrics    Metrics    `toml:"metrics" comment:"Prometheus metrics at /metrics (README: Operating keelson lists them). Every key is reloaded on SIGHUP."`
	Debug      Debug      `toml:"debug" comment:"Go profiling (pprof) and goroutine dumps at /debug/pprof/. Off unless an address is set. Reloaded on SIGHUP."`
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Address           string   `toml:"address" comment:"Where /metrics is served: host:port, or unix:///path for a unix socket (mode 0600). Empty: no metrics endpoint."`
	TLSCertFile       string   `toml:"tls_cert_file" comment:"Server certificate (PEM) to serve HTTPS on a TCP address; needs tls_key_file. Empty: plain HTTP."`
	TLSKeyFile        string   `toml:"tls_key_file" comment:"Server private key (PEM) for tls_cert_file."`
	LeakAuditInterval Duration `toml:"leak_audit_interval" comment:"How often the background leak audit (what keelson doctor reports: network namespaces, IPs, iptables rules, cgroups, containerd objects no pod owns) runs to update keelson_leaks. 0: never."`
}

// Debug configures the profiling endpoint.
type Debug struct {
	Address string `toml:"address" comment:"Where /debug/pprof/ is served: host:port or unix:///path. Empty: off. Anyone reaching it can read keelson's memory profile: keep it on loopback or a socket."`
}

// GRPC configures the CRI listeners.
type GRPC struct {
	Socket              string   `toml:"socket" comment:"Unix socket for CRI clients (kubelet's containerRuntimeEndpoint)."`
	SocketGroup         string   `toml:"socket_group" comment:"Group (name or gid) owning the socket; its members may use keelson. Empty: root's group. The socket mode is 0660."`
	TCPAddress          string   `toml:"tcp_address" comment:"Optional host:port for a TCP listener. Only served with mutual TLS: the three tls_* keys below are then required."`
	TLSCertFile         string   `toml:"tls_cert_file" comment:"Server certificate (PEM) for the TCP listener."`
	TLSKeyFile          string   `toml:"tls_key_file" comment:"Server private key (PEM) for the TCP listener."`
	TLSClientCAFile     string   `toml:"tls_client_ca_file" comment:"CA bundle (PEM) that TCP clients' certificates must chain to."`
	MaxRecvMessageBytes int      `toml:"max_recv_message_bytes" comment:"Largest request accepted, in bytes."`
	MaxSendMessageBytes int      `toml:"max_send_message_bytes" comment:"Largest response sent, in bytes (ListContainers on a busy node can be large)."`
	ShutdownGrace       Duration `toml:"shutdown_grace" comment:"On SIGTERM, how long calls in flight may run before they are cut."`
}

// Containerd configures the containerd connection, or the containerd keelson supervises.
type Containerd struct {
	Address        string   `toml:"address" comment:"Socket of an external containerd. Empty: keelson starts and supervises its own containerd (binary below) under root_dir and state_dir."`
	Namespace      string   `toml:"namespace" comment:"containerd namespace holding keelson's images, containers and snapshots."`
	Binary         string   `toml:"binary" comment:"containerd binary to supervise when address is empty. Its directory is put first on the child's PATH so the matching shim is found."`
	LogLevel       string   `toml:"log_level" comment:"Log level of the supervised containerd (its log is <state_dir>/containerd/containerd.log)."`
	Snapshotter    string   `toml:"snapshotter" comment:"Snapshotter for image layers and container root filesystems."`
	ConnectTimeout Duration `toml:"connect_timeout" comment:"How long start-up waits for containerd to answer."`
	CallTimeout    Duration `toml:"call_timeout" comment:"Bound on single short containerd calls (health checks, version)."`
}

// Runtime configures OCI runtimes and cgroups.
type Runtime struct {
	CgroupDriver   string                    `toml:"cgroup_driver" comment:"How pod and container cgroups are made: \"systemd\" (runc asks systemd for a scope per container; cgroup parents are slice names such as kubepods-burstable-pod<uid>.slice), \"cgroupfs\" (runc writes /sys/fs/cgroup; parents are paths), or \"auto\": systemd when PID 1 is systemd on a cgroup v2 host, else cgroupfs. Reported to kubelet (RuntimeConfig), which then uses the same driver."`
	DefaultHandler string                    `toml:"default_handler" comment:"Handler used when a pod names no RuntimeClass handler."`
	PauseContainer string                    `toml:"pause_container" comment:"When pods get a pause (infra) process: \"auto\" — only pods that share one PID namespace among their containers (it reaps their zombies); the others keep their namespaces by bind mounts, which makes pods faster to start and stop — or \"always\"."`
	LoggerBinary   string                    `toml:"logger_binary" comment:"keelson-logger, which containerd's shims run to write container logs (so no log line depends on keelson being up). Empty: next to the keelson binary."`
	PidsLimit      int64                     `toml:"pids_limit" comment:"Process limit for every container; 0: none (kubelet's pod pids limit still applies)."`
	Handlers       map[string]RuntimeHandler `toml:"handlers" comment:"RuntimeClass handlers by name: [runtime.handlers.<name>]."`
}

var ociVersionRE = regexp.MustCompile(`^1\.[0-9]+\.[0-9]+(-[0-9A-Za-z.+-]+)?$`)

// RuntimeHandler is one RuntimeClass handler.
type RuntimeHandler struct {
	RuntimeType string `toml:"runtime_type" comment:"containerd shim runtime. Empty: io.containerd.runc.v2."`
	BinaryName  string `toml:"binary_name" comment:"OCI runtime binary the shim runs. Empty: the shim's default (runc on its PATH)."`
	Root        string `toml:"root" comment:"OCI runtime state root. Empty: <state_dir>/runtime/<handler>, so keelson never shares runc state with another containerd."`
	OCIVersion  string `toml:"oci_version" comment:"ociVersion written in this handler's container specs. Empty: the runtime-spec version keelson is built with (1.3.0). crun before 1.9 (Debian 12's 1.8.1) refuses anything past 1.1: set \"1.1.0\" for it."`
}

// CNI configures pod networking.
type CNI struct {
	ConfDir  string   `toml:"conf_dir" comment:"Directory of CNI network configs; the first in lexical order is used, reloaded on change."`
	BinDirs  []string `toml:"bin_dirs" comment:"Directories searched for CNI plugin binaries, in order."`
	CacheDir string   `toml:"cache_dir" comment:"libcni's result cache. Empty: <root_dir>/cni/cache."`
	// ConfTemplate: as containerd's CRI conf_template.
	ConfTemplate string `toml:"conf_template" comment:"A CNI config template (Go text/template: {{.PodCIDR}}, {{.PodCIDRRanges}}, {{.Routes}}) rendered into conf_dir/05-keelson-podcidr.conflist whenever kubelet reports the node's pod CIDR (from the control plane's node IPAM). Empty: none; conf_dir is used as it is."`
}

// Images configures the image service.
type Images struct {
	SandboxImage           string   `toml:"sandbox_image" comment:"Image of the pod infra (pause) container. Pinned: kubelet's image GC never removes it. Reloaded on SIGHUP."`
	RegistryConfigDir      string   `toml:"registry_config_dir" comment:"containerd hosts.toml directory (<dir>/<host>/hosts.toml): mirrors, plain-HTTP hosts, CAs, client certs, headers. Reloaded on SIGHUP."`
	AuthFile               string   `toml:"auth_file" comment:"docker-style config.json with registry credentials, used when a pull carries none. Empty: none. Reloaded on SIGHUP."`
	PullProgressTimeout    Duration `toml:"pull_progress_timeout" comment:"A pull whose bytes stop moving this long is cancelled. A slow but moving pull is never cut (with containerd 2.x, whose Transfer service reports bytes a MiB at a time, moving means a MiB within this time). Reloaded on SIGHUP."`
	MaxConcurrentDownloads int      `toml:"max_concurrent_downloads" comment:"Layer downloads run at once across all pulls (with containerd 2.x: the supervised containerd's Transfer service limit; an external containerd keeps its own)."`
}

// CDI configures Container Device Interface devices.
type CDI struct {
	Enabled  bool     `toml:"enabled" comment:"Resolve CDI device names (ContainerConfig.CDI_devices and cdi.k8s.io/* annotations). Off: containers asking for one are refused."`
	SpecDirs []string `toml:"spec_dirs" comment:"Directories of CDI spec files (JSON or YAML), later ones taking precedence; watched for changes."`
}

// NRI configures the NRI plugin interface (github.com/containerd/nri).
type NRI struct {
	Enabled                   bool     `toml:"enabled" comment:"Serve NRI plugins. Off by default (containerd's CRI has it on): a node operator turns it on for the plugins the node runs."`
	SocketPath                string   `toml:"socket_path" comment:"The socket plugins started on their own connect to."`
	PluginPath                string   `toml:"plugin_path" comment:"Directory of plugins keelson starts itself (NN-name executables)."`
	PluginConfigPath          string   `toml:"plugin_config_path" comment:"Directory of configuration files for the plugins keelson starts."`
	DisableConnections        bool     `toml:"disable_connections" comment:"Serve only the plugins keelson starts; no socket."`
	PluginRegistrationTimeout Duration `toml:"plugin_registration_timeout" comment:"How long a plugin may take to register."`
	PluginRequestTimeout      Duration `toml:"plugin_request_timeout" comment:"How long a plugin may take to answer one event; one that does not is dropped, and the pod or container goes on without it."`
}

// Streaming configures the streaming (exec, attach, port-forward) server.
type Streaming struct {
	Address               string   `toml:"address" comment:"IP address to listen on. 0.0.0.0 or :: listen on every interface (URLs then name the loopback address: kubelet connects from this node). Anyone who can reach the port and learns a URL's token can use that one session."`
	Port                  int      `toml:"port" comment:"TCP port to listen on; 0: a free port chosen at start."`
	TLSCertFile           string   `toml:"tls_cert_file" comment:"Server certificate (PEM) to serve HTTPS instead of HTTP; needs tls_key_file. Empty: plain HTTP."`
	TLSKeyFile            string   `toml:"tls_key_file" comment:"Server private key (PEM) for tls_cert_file."`
	IdleTimeout           Duration `toml:"idle_timeout" comment:"A session whose streams carry nothing for this long is closed."`
	StreamCreationTimeout Duration `toml:"stream_creation_timeout" comment:"How long a SPDY client may take to open a session's streams after connecting."`
}

// Default returns the configuration used for every key the file does not set.
func Default() Config {
	return Config{
		RootDir:       "/var/lib/keelson",
		StateDir:      "/run/keelson",
		LogLevel:      0,
		GCInterval:    Duration(10 * time.Minute),
		StatsInterval: Duration(10 * time.Second),
		GRPC: GRPC{
			Socket:              "/run/keelson/keelson.sock",
			MaxRecvMessageBytes: 16 << 20,
			MaxSendMessageBytes: 16 << 20,
			ShutdownGrace:       Duration(10 * time.Second),
		},
		Containerd: Containerd{
			Namespace:      "keelson",
			Binary:         "/opt/keelson/bin/containerd",
			LogLevel:       "info",
			Snapshotter:    "overlayfs",
			ConnectTimeout: Duration(60 * time.Second),
			CallTimeout:    Duration(5 * time.Second),
		},
		Runtime: Runtime{
			CgroupDriver:   "auto",
			DefaultHandler: "runc",
			PauseContainer: "auto",
			Handlers: map[string]RuntimeHandler{
				"runc": {RuntimeType: DefaultRuntimeType, BinaryName: "/opt/keelson/bin/runc"},
			},
		},
		CNI: CNI{
			ConfDir: "/etc/keelson/cni/net.d",
			BinDirs: []string{"/opt/keelson/cni/bin", "/opt/cni/bin", "/usr/lib/cni"},
		},
		Images: Images{
			SandboxImage:           "registry.k8s.io/pause:3.10",
			RegistryConfigDir:      "/etc/keelson/certs.d",
			PullProgressTimeout:    Duration(5 * time.Minute),
			MaxConcurrentDownloads: 3,
		},
		CDI: CDI{Enabled: true, SpecDirs: []string{"/etc/cdi", "/var/run/cdi"}},
		NRI: NRI{
			SocketPath:                "/var/run/nri/nri.sock",
			PluginPath:                "/opt/nri/plugins",
			PluginConfigPath:          "/etc/nri/conf.d",
			PluginRegistrationTimeout: Duration(5 * time.Second),
			PluginRequestTimeout:      Duration(2 * time.Second),
		},
		Metrics: Metrics{
			Address:           DefaultMetricsAddress,
			LeakAuditInterval: Duration(5 * time.Minute),
		},
		Streaming: Streaming{
			Address:     "127.0.0.1",
			IdleTimeout: Duration(4 * time.Hour),
			// k8s.io/cri-streaming's DefaultStreamCreationTimeout.
			StreamCreationTimeout: Duration(30 * time.Second),
		},
	}
}

// Load reads the TOML file at path over the defaults. A missing file is an error only
// when mustExist is set (an explicit --config); otherwise the defaults are returned.
func Load(path string, mustExist bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !mustExist {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading config: %w", err)
	}
	if err := Decode(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Decode parses TOML data into cfg, which holds the values for keys the data omits.
// Unknown keys are errors that name the key and its line.
func Decode(data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	err := dec.Decode(cfg)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		msgs := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			row, _ := e.Position()
			msgs = append(msgs, fmt.Sprintf("unknown key %q at line %d", strings.Join(e.Key(), "."), row))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("line %d column %d: %s", row, col, de.Error())
	}
	return err
}

// Marshal renders cfg as commented TOML (what `keelson config default` prints).
func Marshal(cfg Config) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# keelson configuration. Every key is shown with its default value.\n\n")
	enc := toml.NewEncoder(&b).SetIndentTables(true)
	if err := enc.Encode(cfg); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Validate checks cfg and fills the keys whose defaults derive from others.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	abs := func(key, p string) {
		if !filepath.IsAbs(p) {
			bad("%s must be an absolute path, got %q", key, p)
		}
	}
	abs("root_dir", c.RootDir)
	abs("state_dir", c.StateDir)
	if c.CNI.ConfTemplate != "" {
		abs("cni.conf_template", c.CNI.ConfTemplate)
	}
	abs("grpc.socket", c.GRPC.Socket)
	for i, d := range c.CDI.SpecDirs {
		abs(fmt.Sprintf("cdi.spec_dirs[%d]", i), d)
	}
	if c.NRI.Enabled {
		if !c.NRI.DisableConnections {
			abs("nri.socket_path", c.NRI.SocketPath)
		}
		abs("nri.plugin_path", c.NRI.PluginPath)
		abs("nri.plugin_config_path", c.NRI.PluginConfigPath)
		if c.NRI.PluginRegistrationTimeout <= 0 || c.NRI.PluginRequestTimeout <= 0 {
			bad("nri.plugin_registration_timeout and nri.plugin_request_timeout must be positive")
		}
	}
	if c.GCInterval <= 0 {
		bad("gc_interval must be positive")
	}
	if c.Metrics.LeakAuditInterval < 0 {
		bad("metrics.leak_audit_interval must not be negative")
	}
	for key, e := range map[string]struct{ address, cert, key string }{
		"metrics": {c.Metrics.Address, c.Metrics.TLSCertFile, c.Metrics.TLSKeyFile},
		"debug":   {c.Debug.Address, "", ""},
	} {
		if err := checkEndpoint(key, e.address, e.cert, e.key); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StatsInterval < Duration(time.Second) {
		bad("stats_interval must be at least 1s, got %s", c.StatsInterval.D())
	}
	if c.LogLevel < 0 || c.LogLevel > 10 {
		bad("log_level must be between 0 and 10, got %d", c.LogLevel)
	}
	if c.GRPC.TCPAddress != "" {
		if c.GRPC.TLSCertFile == "" || c.GRPC.TLSKeyFile == "" || c.GRPC.TLSClientCAFile == "" {
			bad("grpc.tcp_address %q needs mutual TLS: set grpc.tls_cert_file, grpc.tls_key_file and grpc.tls_client_ca_file (plain TCP is refused: anyone reaching the port would own the node)", c.GRPC.TCPAddress)
		}
	}
	if c.GRPC.MaxRecvMessageBytes <= 0 || c.GRPC.MaxSendMessageBytes <= 0 {
		bad("grpc.max_recv_message_bytes and grpc.max_send_message_bytes must be positive")
	}
	if c.Containerd.Address == "" && c.Containerd.Binary == "" {
		bad("containerd.binary is required when containerd.address is empty (keelson supervises its own containerd)")
	}
	if c.Containerd.Namespace == "" {
		bad("containerd.namespace must not be empty")
	}
	if c.Containerd.Snapshotter == "" {
		bad("containerd.snapshotter must not be empty")
	}
	if c.Containerd.ConnectTimeout <= 0 || c.Containerd.CallTimeout <= 0 {
		bad("containerd.connect_timeout and containerd.call_timeout must be positive")
	}
	if c.Runtime.LoggerBinary != "" && !filepath.IsAbs(c.Runtime.LoggerBinary) {
		bad("runtime.logger_binary must be an absolute path, got %q", c.Runtime.LoggerBinary)
	}
	if c.Runtime.PauseContainer != "auto" && c.Runtime.PauseContainer != "always" {
		bad("runtime.pause_container must be \"auto\" or \"always\", got %q", c.Runtime.PauseContainer)
	}
	if c.Runtime.PidsLimit < 0 {
		bad("runtime.pids_limit must not be negative")
	}
	switch c.Runtime.CgroupDriver {
	case "auto", "systemd", "cgroupfs":
	default:
		bad("runtime.cgroup_driver must be \"auto\", \"systemd\" or \"cgroupfs\", got %q", c.Runtime.CgroupDriver)
	}
	if _, ok := c.Runtime.Handlers[c.Runtime.DefaultHandler]; !ok {
		bad("runtime.default_handler %q is not among runtime.handlers (%s)", c.Runtime.DefaultHandler, strings.Join(c.HandlerNames(), ", "))
	}
	for name, h := range c.Runtime.Handlers {
		if h.RuntimeType == "" {
			h.RuntimeType = DefaultRuntimeType
		}
		if h.Root == "" {
			h.Root = filepath.Join(c.StateDir, "runtime", name)
		}
		if h.OCIVersion != "" && !ociVersionRE.MatchString(h.OCIVersion) {
			bad("runtime.handlers.%s.oci_version %q is not an OCI runtime-spec version such as 1.1.0", name, h.OCIVersion)
		}
		if h.BinaryName != "" && !filepath.IsAbs(h.BinaryName) && filepath.Base(h.BinaryName) != h.BinaryName {
			bad("runtime.handlers.%s.binary_name %q must be an absolute path or a bare name looked up on PATH", name, h.BinaryName)
		}
		c.Runtime.Handlers[name] = h
	}
	abs("cni.conf_dir", c.CNI.ConfDir)
	if len(c.CNI.BinDirs) == 0 {
		bad("cni.bin_dirs must name at least one directory")
	}
	if c.CNI.CacheDir == "" {
		c.CNI.CacheDir = filepath.Join(c.RootDir, "cni", "cache")
	}
	if c.Images.SandboxImage == "" {
		bad("images.sandbox_image must not be empty")
	}
	if c.Images.PullProgressTimeout <= 0 {
		bad("images.pull_progress_timeout must be positive")
	}
	if c.Images.MaxConcurrentDownloads <= 0 {
		bad("images.max_concurrent_downloads must be positive")
	}
	if net.ParseIP(c.Streaming.Address) == nil {
		bad("streaming.address must be an IP address (0.0.0.0 or :: for every interface), got %q", c.Streaming.Address)
	}
	if c.Streaming.Port < 0 || c.Streaming.Port > 65535 {
		bad("streaming.port must be between 0 and 65535, got %d", c.Streaming.Port)
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		bad("streaming.tls_cert_file and streaming.tls_key_file must be set together")
	}
	if c.Streaming.IdleTimeout <= 0 || c.Streaming.StreamCreationTimeout <= 0 {
		bad("streaming.idle_timeout and streaming.stream_creation_timeout must be positive")
	}
	return errors.Join(errs...)
}

// HandlerNames lists the runtime handlers, sorted.
func (c *Config) HandlerNames() []string {
	names := make([]string, 0, len(c.Runtime.Handlers))
	for n := range c.Runtime.Handlers {
		names = append(names, n)
	}
	sortStrings(names)
	return names
}

// checkEndpoint validates an HTTP endpoint's keys: host:port or a unix socket, and
// both TLS files or none.
func checkEndpoint(key, address, cert, tlsKey string) error {
	if address == "" {
		return nil
	}
	if (cert == "") != (tlsKey == "") {
		return fmt.Errorf("%s.tls_cert_file and %s.tls_key_file go together", key, key)
	}
	if p, ok := strings.CutPrefix(address, "unix://"); ok || strings.HasPrefix(address, "/") {
		if !ok {
			p = address
		}
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s.address %q: a unix socket needs an absolute path (unix:///path)", key, address)
		}
		return nil
	}
	if _, port, err := net.SplitHostPort(address); err != nil || port == "" {
		return fmt.Errorf("%s.address %q is neither host:port nor unix:///path", key, address)
	}
	return nil
}
