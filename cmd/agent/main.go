// Command keelson is a CRI runtime for Kubernetes nodes on containerd.
//
//	keelson [flags]            run the daemon
//	keelson version            print versions
//	keelson config default     print the default configuration, every key documented
//	keelson config validate [FILE]  check a config file (default /etc/keelson/config.toml)
//	keelson doctor [--fix]     audit the node for leftovers no pod owns; --fix removes them
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/daemon"
	"github.com/keelson/keelson/pkg/runtime"
	"github.com/keelson/keelson/pkg/tracing"
	"github.com/keelson/keelson/pkg/version"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// options are the command-line flags; each one set overrides the config file.
type options struct {
	fs         *flag.FlagSet
	configPath string
	logLevel   int
	overrides  map[string]func(c *config.Config, v string)
}

func newOptions() *options {
	o := &options{fs: flag.NewFlagSet("keelson", flag.ContinueOnError)}
	o.fs.StringVar(&o.configPath, "config", config.DefaultPath, "config file (TOML); `keelson config default` prints every key")
	o.fs.IntVar(&o.logLevel, "v", 0, "log verbosity (same as --log-level)")
	o.fs.IntVar(&o.logLevel, "log-level", 0, "log verbosity: 0 start-up and errors, 2 mutating calls, 4 every call, 6 request bodies")
	o.overrides = map[string]func(c *config.Config, v string){
		"root-dir":            func(c *config.Config, v string) { c.RootDir = v },
		"state-dir":           func(c *config.Config, v string) { c.StateDir = v },
		"socket":              func(c *config.Config, v string) { c.GRPC.Socket = v },
		"socket-group":        func(c *config.Config, v string) { c.GRPC.SocketGroup = v },
		"containerd-address":  func(c *config.Config, v string) { c.Containerd.Address = v },
		"containerd-binary":   func(c *config.Config, v string) { c.Containerd.Binary = v },
		"cni-conf-dir":        func(c *config.Config, v string) { c.CNI.ConfDir = v },
		"cni-bin-dirs":        func(c *config.Config, v string) { c.CNI.BinDirs = strings.Split(v, ",") },
		"sandbox-image":       func(c *config.Config, v string) { c.Images.SandboxImage = v },
		"registry-config-dir": func(c *config.Config, v string) { c.Images.RegistryConfigDir = v },
	}
	help := map[string]string{
		"root-dir":            "root_dir: persistent state",
		"state-dir":           "state_dir: runtime state",
		"socket":              "grpc.socket: the CRI unix socket",
		"socket-group":        "grpc.socket_group: group allowed to use the socket",
		"containerd-address":  "containerd.address: use this containerd instead of a supervised one",
		"containerd-binary":   "containerd.binary: containerd to supervise",
		"cni-conf-dir":        "cni.conf_dir",
		"cni-bin-dirs":        "cni.bin_dirs, comma-separated",
		"sandbox-image":       "images.sandbox_image",
		"registry-config-dir": "images.registry_config_dir (hosts.toml directory)",
	}
	for name := range o.overrides {
		o.fs.String(name, "", help[name])
	}
	return o
}

// load reads the config file and applies the flags that were set over it.
func (o *options) load() (config.Config, error) {
	explicit := false
	o.fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(o.configPath, explicit)
	if err != nil {
		return cfg, err
	}
	o.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "v", "log-level":
			cfg.LogLevel = o.logLevel
		default:
			if set, ok := o.overrides[f.Name]; ok {
				set(&cfg, f.Value.String())
			}
		}
	})
	return cfg, cfg.Validate()
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Printf("keelson %s (CRI %s, %s)\n", version.Get(), version.CRIVersion, goruntime.Version())
			cfg, _ := newOptions().load()
			if _, v, err := runtime.BinaryMajorVersion(cfg.Containerd.Binary); err == nil {
				fmt.Printf("supervised containerd: %s (%s)\n", v, cfg.Containerd.Binary)
			}
			return 0
		case "config":
			if len(args) == 2 && args[1] == "default" {
				out, err := config.Marshal(config.Default())
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					return 1
				}
				os.Stdout.Write(out)
				return 0
			}
			if len(args) >= 2 && args[1] == "validate" && len(args) <= 3 {
				return validateConfig(args[2:])
			}
			fmt.Fprintln(os.Stderr, "usage: keelson config default | keelson config validate [FILE]")
			return 2
		}
	}
	if len(args) > 0 && args[0] == "doctor" {
		return runDoctor(args[1:])
	}
	if len(args) > 0 && args[0] == "images" {
		return runImages(args[1:], os.Stdout)
	}
	o := newOptions()
	if err := o.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "keelson: unknown command %q (commands: version, config default, doctor)\n", o.fs.Arg(0))
		return 2
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	setLevel := func(level int) { _ = klogFlags.Set("v", strconv.Itoa(level)) }
	defer klog.Flush()

	// A daemon that keeps its state in memory and lives for months: trade a little
	// CPU in the collector for a smaller heap (GOGC in the environment still wins).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	klog.InfoS("Loading config", "file", o.configPath)
	cfg, err := o.load()
	if err != nil {
		klog.ErrorS(err, "Invalid configuration")
		return 1
	}
	setLevel(cfg.LogLevel)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shutdownTracing, err := tracing.Setup(ctx)
	if err != nil {
		klog.ErrorS(err, "Tracing (OTEL_* environment)")
		return 1
	}
	defer func() {
		flushCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		_ = shutdownTracing(flushCtx)
	}()
	if tracing.Enabled() {
		klog.InfoS("Tracing: spans go to the OTLP collector the OTEL_* environment names")
	}
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var running atomic.Pointer[daemon.Daemon] // set once serving, for reloads
	other := make(chan os.Signal, 4)
	signal.Notify(other, syscall.SIGHUP, syscall.SIGUSR1)
	go func() {
		for sig := range other {
			switch sig {
			case syscall.SIGUSR1:
				dumpStacks()
			case syscall.SIGHUP:
				reloaded, err := o.load()
				if err != nil {
					klog.ErrorS(err, "SIGHUP: config not reloaded")
					continue
				}
				setLevel(reloaded.LogLevel)
				if d := running.Load(); d != nil {
					applied, needRestart := d.Reload(reloaded)
					klog.InfoS("SIGHUP: config reloaded", "applied", applied, "needRestart", needRestart)
				} else {
					klog.InfoS("SIGHUP: reloaded the log level (keelson is still starting)", "level", reloaded.LogLevel)
				}
			}
		}
	}()
	// A stop signal during start-up cancels it.
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	notify("STATUS=starting: containerd, state recovery, CNI")
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		notify("STATUS=failed to start: " + err.Error())
		if ctx.Err() != nil {
			klog.InfoS("Start-up interrupted by a signal")
			return 0
		}
		klog.ErrorS(err, "keelson failed to start")
		return 1
	}
	running.Store(d)
	notify(sd.SdNotifyReady + "\nSTATUS=serving CRI on " + cfg.GRPC.Socket)
	go watchdog(ctx, cfg.GRPC.Socket)
	code := 0
	select {
	case <-ctx.Done():
		klog.InfoS("Shutting down on signal")
	case err := <-d.Done():
		klog.ErrorS(err, "CRI listener stopped; shutting down")
		code = 1
	}
	notify(sd.SdNotifyStopping + "\nSTATUS=stopping (containers keep running)")
	shutdownCtx, done := context.WithTimeout(context.Background(), cfg.GRPC.ShutdownGrace.D()+30*time.Second)
	defer done()
	if err := d.Shutdown(shutdownCtx); err != nil {
		klog.ErrorS(err, "Shutdown incomplete")
		code = 1
	}
	klog.InfoS("keelson stopped")
	return code
}

// validateConfig is `keelson config validate [FILE]`: the file parses, has no
// unknown keys and passes the daemon's own checks; it prints what is wrong.
func validateConfig(args []string) int {
	path := config.DefaultPath
	if len(args) == 1 {
		path = args[0]
	}
	cfg, err := config.Load(path, true)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		return 1
	}
	fmt.Printf("%s: ok\n", path)
	return 0
}

// dumpStacks writes every goroutine's stack to the log (SIGUSR1).
func dumpStacks() {
	buf := make([]byte, 1<<20)
	for {
		n := goruntime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	klog.InfoS("SIGUSR1: goroutine dump", "goroutines", goruntime.NumGoroutine())
	klog.Info("\n" + string(buf))
}

// runDoctor is `keelson doctor [--fix] [flags]`.
func runDoctor(args []string) int {
	o := newOptions()
	fix := o.fs.Bool("fix", false, "remove what no sandbox or container owns (keelson must be stopped)")
	if err := o.fs.Parse(args); err != nil {
		return 2
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("v", strconv.Itoa(o.logLevel))
	cfg, err := o.load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "keelson doctor:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	left, err := daemon.Doctor(ctx, cfg, *fix, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keelson doctor:", err)
		return 2
	}
	if left > 0 {
		return 1
	}
	return 0
}
