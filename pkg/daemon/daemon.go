// Package daemon puts keelson together: it takes the locks, brings up containerd (its
// own supervised child or an external one), recovers state, serves CRI, and shuts all
// of it down again in the reverse order.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/containerd/containerd/v2/pkg/apparmor"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelson/keelson/pkg/cgroups"
	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/cri"
	"github.com/keelson/keelson/pkg/criu"
	"github.com/keelson/keelson/pkg/devices"
	"github.com/keelson/keelson/pkg/events"
	"github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/nri"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/sandbox"
	"github.com/keelson/keelson/pkg/selinux"
	"github.com/keelson/keelson/pkg/stats"
	"github.com/keelson/keelson/pkg/streaming"
	"github.com/keelson/keelson/pkg/tracing"
	"github.com/keelson/keelson/pkg/validate"
	"github.com/keelson/keelson/pkg/version"
)

// healthInterval is how often containerd's health is checked for Status.
const healthInterval = 2 * time.Second

// maxShimSocketDir is containerd 2.x's limit on the shim socket directory's length.
const maxShimSocketDir = 42

// Daemon is a running keelson.
type Daemon struct {
	cfgMu      sync.RWMutex // cfg changes on a reload
	cfg        config.Config
	bg         context.Context // lives until Shutdown
	locks      []*os.File
	sup        *runtime.Supervisor
	conn       *runtime.Conn
	network    *cni.Manager
	images     *images.Service
	sandboxes  *sandbox.Service
	containers *container.Service
	stats      *stats.Collector
	streaming  *streaming.Server
	grpc       *grpc.Server // serves the unix socket
	tls        *grpc.Server // serves the mutual-TLS TCP listener, if configured
	listeners  []net.Listener
	activated  net.Listener // the CRI socket systemd passed, if any
	serveErr   chan error
	cancel     context.CancelFunc
	events     *events.Broadcaster
	features   map[string]runtime.HandlerFeatures // by runtime handler
	userns     map[string]error                   // by runtime handler: nil when pods may have their own user namespace
	// cgroupDriver is the driver in use (runtime.cgroup_driver resolved).
	cgroupDriver string
	obs          observability
	nri          *nri.NRI // nil: NRI is off
	cdi          interface {
		Inject(spec *specs.Spec, names []string) error
	} // nil: CDI is off
}

// Start brings keelson up in order — locks, containerd, state recovery, CNI, gRPC —
// and logs one banner line when it serves. On error everything started is stopped.
func Start(ctx context.Context, cfg config.Config) (d *Daemon, retErr error) {
	bg, cancel := context.WithCancel(context.Background())
	d = &Daemon{cfg: cfg, bg: bg, cancel: cancel, serveErr: make(chan error, 2), events: &events.Broadcaster{}}
	defer func() {
		if retErr != nil {
			stopCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
			defer stop()
			d.Shutdown(stopCtx)
		}
	}()

	for _, dir := range []string{cfg.RootDir, cfg.StateDir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return d, err
		}
	}
	klog.InfoS("Taking locks", "stateDir", cfg.StateDir, "socket", cfg.GRPC.Socket)
	for _, l := range []struct{ path, what string }{
		{filepath.Join(cfg.StateDir, "keelson.lock"), "state dir " + cfg.StateDir},
		{cfg.GRPC.Socket + ".lock", "socket " + cfg.GRPC.Socket},
	} {
		if err := os.MkdirAll(filepath.Dir(l.path), 0o711); err != nil {
			return d, err
		}
		f, err := lockFile(l.path, l.what)
		if err != nil {
			return d, err
		}
		d.locks = append(d.locks, f)
	}

	// Before any child starts: the handed-over socket must not leak into it.
	activated, err := activatedSocket(cfg.GRPC.Socket)
	if err != nil {
		return d, err
	}
	d.activated = activated

	address := cfg.Containerd.Address
	if address == "" {
		d.sup = supervisorFor(cfg)
		klog.InfoS("Starting supervised containerd", "binary", cfg.Containerd.Binary, "config", d.sup.ConfigPath())
		if err := d.sup.Start(); err != nil {
			return d, fmt.Errorf("supervised containerd: %w", err)
		}
		address = d.sup.Child.Address
	}
	klog.InfoS("Connecting to containerd", "address", address, "namespace", cfg.Containerd.Namespace)
	conn, err := runtime.Dial(ctx, address, cfg.Containerd.Namespace, cfg.Containerd.ConnectTimeout.D(), cfg.Containerd.CallTimeout.D())
	if err != nil {
		if d.sup != nil {
			err = fmt.Errorf("%w (containerd's log: %s)", err, d.sup.LogPath())
		}
		return d, err
	}
	d.conn = conn
	if d.sup != nil {
		d.sup.OnExit = func(err error) { conn.MarkDown(runtime.ReasonContainerdExited, err.Error()) }
	}
	go conn.Watch(bg, healthInterval)

	klog.InfoS("Recovering state")
	d.images, err = images.New(conn, images.Options{
		Snapshotter:            cfg.Containerd.Snapshotter,
		RegistryConfigDir:      cfg.Images.RegistryConfigDir,
		AuthFile:               cfg.Images.AuthFile,
		PullProgressTimeout:    cfg.Images.PullProgressTimeout.D(),
		MaxConcurrentDownloads: cfg.Images.MaxConcurrentDownloads,
		SandboxImage:           cfg.Images.SandboxImage,
		Transfer:               versionAtLeast(conn.Version(), 2, 0),
	})
	if err != nil {
		return d, err
	}
	if err := d.images.Load(ctx); err != nil {
		return d, err
	}
	d.images.Run(bg)

	klog.InfoS("Loading CNI config", "confDir", cfg.CNI.ConfDir, "binDirs", cfg.CNI.BinDirs)
	d.network = cni.New(cniOptions(cfg))
	_ = d.network.Load()
	if err := d.network.Watch(bg); err != nil {
		return d, err
	}

	driver := cgroups.ResolveDriver(cfg.Runtime.CgroupDriver)
	if driver == cgroups.Systemd && !cgroups.SystemdBooted() {
		return d, fmt.Errorf("runtime.cgroup_driver is systemd, but systemd is not PID 1 on this host (use \"cgroupfs\" or \"auto\")")
	}
	d.cgroupDriver = driver
	host := validate.Host{
		CgroupV2:     cgroups.IsV2(),
		CgroupDriver: driver,
		CPUs:         validate.ReadCPUSet("/sys/devices/system/cpu/online"),
		Mems:         validate.ReadCPUSet("/sys/devices/system/node/online"),
	}
	d.features = probeHandlers(cfg)
	supervisedState := ""
	if cfg.Containerd.Address == "" {
		supervisedState = cfg.StateDir
	}
	d.userns = userNamespaceSupport(ctx, conn, cfg.Containerd.Snapshotter, supervisedState, d.features)
	if d.nri, err = d.newNRI(cfg.NRI); err != nil {
		return d, err
	}
	d.sandboxes = sandbox.New(conn, d.images, d.network, sandbox.Options{
		RootDir:        cfg.RootDir,
		StateDir:       cfg.StateDir,
		Snapshotter:    cfg.Containerd.Snapshotter,
		Handlers:       cfg.Runtime.Handlers,
		DefaultHandler: cfg.Runtime.DefaultHandler,
		Events:         d.events,
		PauseContainer: cfg.Runtime.PauseContainer,
		Host:           host,
		UserNamespaces: d.userns,
		NRI:            d.nri,
	})
	d.sandboxes.Watch(bg)
	if err := d.sandboxes.Load(ctx); err != nil {
		return d, err
	}

	logger, err := loggerBinary(cfg.Runtime.LoggerBinary)
	if err != nil {
		return d, err
	}
	rro := map[string]bool{}
	for name, f := range d.features {
		rro[name] = f.RecursiveReadOnlyMounts
	}
	copts := container.Options{
		RecursiveReadOnly: rro,
		StateDir:          cfg.StateDir,
		Snapshotter:       cfg.Containerd.Snapshotter,
		Handlers:          cfg.Runtime.Handlers,
		LoggerBinary:      logger,
		LoggerV2:          versionAtLeast(conn.Version(), 2, 2),
		PidsLimit:         cfg.Runtime.PidsLimit,
		Events:            d.events,
		Host:              host,
		AppArmor:          apparmor.HostSupports(),
		NRI:               d.nri,
		CRIU:              &criu.Checker{Dirs: criuDirs(cfg)},
		Restore:           versionAtLeast(conn.Version(), 2, 0),
		RootDir:           cfg.RootDir,
	}
	if cfg.CDI.Enabled {
		registry, err := devices.NewCDI(cfg.CDI.SpecDirs)
		if err != nil {
			return d, fmt.Errorf("CDI: %w", err)
		}
		if err := registry.Errors(); err != nil {
			klog.ErrorS(err, "Some CDI specs cannot be used")
		}
		klog.InfoS("CDI devices", "specDirs", cfg.CDI.SpecDirs)
		copts.CDI, d.cdi = registry, registry
	}
	d.containers = container.New(conn, d.images, d.sandboxes, copts)
	d.images.SetMountedBy(d.containers.ImageVolumeUsers)
	d.sandboxes.SetHooks(sandbox.Hooks{StopContainers: d.containers.StopPod, RemoveContainers: d.containers.RemovePod})
	d.containers.Watch(bg)
	if err := d.containers.Load(ctx); err != nil {
		return d, err
	}
	// Nothing of keelson's is being created yet: every shim without a task is left
	// over, however young.
	conn.ReapOrphanShims(ctx, 0)
	conn.RemoveLeftovers(ctx, cfg.Containerd.Snapshotter)
	if err := d.nri.Start(); err != nil {
		return d, err
	}
	if d.nri != nil {
		klog.InfoS("NRI plugins served", "socket", cfg.NRI.SocketPath, "pluginPath", cfg.NRI.PluginPath)
	}
	go every(bg, cfg.GCInterval.D(), d.collect)
	d.stats = stats.New(conn.Client, stats.Options{Snapshotter: cfg.Containerd.Snapshotter, Interval: cfg.StatsInterval.D()},
		stats.Sources{Containers: d.containers.List, Sandboxes: d.sandboxes.List})
	d.stats.Start(bg)

	d.streaming, err = streaming.New(streaming.Config{
		Address:               cfg.Streaming.Address,
		Port:                  cfg.Streaming.Port,
		TLSCertFile:           cfg.Streaming.TLSCertFile,
		TLSKeyFile:            cfg.Streaming.TLSKeyFile,
		IdleTimeout:           cfg.Streaming.IdleTimeout.D(),
		StreamCreationTimeout: cfg.Streaming.StreamCreationTimeout.D(),
	}, d.containers, d.sandboxes)
	if err != nil {
		return d, err
	}
	go func() {
		if err := d.streaming.Serve(); err != nil {
			select {
			case d.serveErr <- fmt.Errorf("streaming server: %w", err):
			default:
			}
		}
	}()
	klog.InfoS("Streaming server listening", "url", d.streaming.URL())

	if err := d.startObservability(bg); err != nil {
		return d, err
	}
	if err := d.serve(); err != nil {
		return d, err
	}
	klog.InfoS("keelson is serving",
		"version", version.Get(),
		"containerd", conn.Version(), "containerdAddress", address, "supervised", d.sup != nil,
		"socket", cfg.GRPC.Socket, "tcp", cfg.GRPC.TCPAddress,
		"runtimeHandlers", cfg.HandlerNames(), "defaultHandler", cfg.Runtime.DefaultHandler,
		"snapshotter", cfg.Containerd.Snapshotter, "cgroupDriver", d.cgroupDriver, "cgroupV2", cgroups.IsV2(),
		"cniConfDir", cfg.CNI.ConfDir, "cniBinDirs", cfg.CNI.BinDirs)
	return d, nil
}

func supervisorFor(cfg config.Config) *runtime.Supervisor {
	dir := filepath.Join(cfg.StateDir, "containerd")
	socketDir := filepath.Join(cfg.StateDir, "s")
	if len(socketDir) > maxShimSocketDir {
		socketDir = "" // containerd's default, /run/containerd/s
	}
	return &runtime.Supervisor{
		Binary: cfg.Containerd.Binary,
		Dir:    dir,
		Child: runtime.ChildConfig{
			Root:      filepath.Join(cfg.RootDir, "containerd"),
			State:     filepath.Join(dir, "state"),
			Address:   filepath.Join(dir, "containerd.sock"),
			LogLevel:  cfg.Containerd.LogLevel,
			SocketDir: socketDir,
			// Pulls through the Transfer service: keelson's limit and snapshotter.
			MaxConcurrentDownloads: cfg.Images.MaxConcurrentDownloads,
			Snapshotter:            cfg.Containerd.Snapshotter,
			Platform:               platforms.DefaultString(),
		},
		Namespace: cfg.Containerd.Namespace,
		ExitPath:  func(id string) string { return container.ShimExitPath(cfg.StateDir, id) },
	}
}

func (d *Daemon) serve() error {
	cfg := d.cfg
	srv := &cri.Server{
		Runtime:        d.conn,
		Network:        d.network,
		Images:         d.images,
		Sandboxes:      d.sandboxes,
		Containers:     d.containers,
		Checkpointer:   d.containers,
		Stats:          d.stats,
		Events:         d.events,
		DefaultHandler: cfg.Runtime.DefaultHandler,
		Info:           d.info,
		Streaming:      d.streaming,
		SystemdCgroup:  d.cgroupDriver == cgroups.Systemd,
	}
	names := cfg.HandlerNames()
	slices.SortStableFunc(names, func(a, b string) int { // default first
		switch {
		case a == cfg.Runtime.DefaultHandler:
			return -1
		case b == cfg.Runtime.DefaultHandler:
			return 1
		}
		return 0
	})
	for _, n := range names {
		srv.Handlers = append(srv.Handlers, cri.Handler{Name: n, RecursiveReadOnlyMounts: d.features[n].RecursiveReadOnlyMounts, UserNamespaces: supported(d.userns, n)})
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.GRPC.MaxRecvMessageBytes),
		grpc.MaxSendMsgSize(cfg.GRPC.MaxSendMessageBytes),
		grpc.ChainUnaryInterceptor(cri.UnaryInterceptor),
		grpc.ChainStreamInterceptor(cri.StreamInterceptor),
	}
	opts = append(opts, tracing.ServerOptions()...)
	d.grpc = grpc.NewServer(opts...)
	srv.Register(d.grpc)

	unixL := d.activated
	var err error
	if unixL != nil {
		klog.InfoS("Serving CRI on the socket systemd passed (socket activation)", "socket", cfg.GRPC.Socket)
	} else if unixL, err = listenUnix(cfg.GRPC.Socket, cfg.GRPC.SocketGroup); err != nil {
		return err
	}
	d.listeners = append(d.listeners, unixL)
	go func() { d.serveErr <- d.grpc.Serve(unixL) }()

	if cfg.GRPC.TCPAddress != "" {
		creds, err := tcpCredentials(cfg.GRPC)
		if err != nil {
			return err
		}
		// A second server: TLS applies to the TCP listener only.
		tlsSrv := grpc.NewServer(append(opts, grpc.Creds(creds))...)
		srv.Register(tlsSrv)
		tcpL, err := net.Listen("tcp", cfg.GRPC.TCPAddress)
		if err != nil {
			return fmt.Errorf("listening on grpc.tcp_address %s: %w", cfg.GRPC.TCPAddress, err)
		}
		d.listeners = append(d.listeners, tcpL)
		d.tls = tlsSrv
		go func() { d.serveErr <- tlsSrv.Serve(tcpL) }()
	}
	return nil
}

// collect is the background collection: CNI attachments of sandboxes that are gone,
// and shims that serve no task (older than a minute, so none being created).
func (d *Daemon) collect(ctx context.Context) {
	d.sandboxes.GCNetwork(ctx)
	d.conn.ReapOrphanShims(ctx, time.Minute)
}

// info is Status's verbose information.
func (d *Daemon) info() map[string]string {
	cfgJSON, _ := json.Marshal(d.config())
	info := map[string]string{
		"config":            string(cfgJSON),
		"containerdAddress": d.conn.Address,
		"cgroupDriver":      d.cgroupDriver,
		"appArmor":          strconv.FormatBool(apparmor.HostSupports()),
		"selinux":           strconv.FormatBool(selinux.Host{}.Enabled()),
	}
	if _, file := d.network.Network(); file != "" {
		info["cniConfigFile"] = file
	}
	if d.sup != nil {
		info["containerdPid"] = strconv.Itoa(d.sup.Pid())
		info["containerdRestarts"] = strconv.Itoa(d.sup.Restarts())
	}
	return info
}

// Done delivers an error if a listener stops serving on its own.
func (d *Daemon) Done() <-chan error { return d.serveErr }

// Shutdown stops accepting calls, lets calls in flight finish for up to
// grpc.shutdown_grace, then stops containerd (if supervised) — containers keep
// running in their shims — and releases the socket and the locks.
func (d *Daemon) Shutdown(ctx context.Context) error {
	var errs []error
	for _, g := range []*grpc.Server{d.grpc, d.tls} {
		if g == nil {
			continue
		}
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		grace := time.NewTimer(d.config().GRPC.ShutdownGrace.D())
		select {
		case <-stopped:
		case <-grace.C:
			klog.InfoS("Calls still running after the shutdown grace period; cutting them", "grace", d.config().GRPC.ShutdownGrace.D())
			g.Stop()
		case <-ctx.Done():
			g.Stop()
		}
		grace.Stop()
	}
	if d.streaming != nil {
		// Sessions end (their exec processes are killed) while containerd is still up.
		if err := d.streaming.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, l := range d.listeners {
		_ = l.Close()
	}
	if d.activated != nil {
		_ = d.activated.Close() // if start-up failed before serving it
	}
	d.stopObservability()
	d.nri.Stop()
	d.cancel()
	if d.conn != nil {
		if err := d.conn.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.sup != nil {
		if err := d.sup.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range d.locks {
		_ = f.Close()
	}
	d.locks = nil
	return errors.Join(errs...)
}
