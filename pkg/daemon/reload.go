package daemon

import (
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/tracing"
)

// reloadable are the keys a reload (SIGHUP) applies to a running keelson; any other
// key that changed waits for a restart. log_level is applied by the caller.
var reloadable = map[string]bool{
	"log_level":                    true,
	"stats_interval":               true,
	"images.registry_config_dir":   true,
	"images.auth_file":             true,
	"images.pull_progress_timeout": true,
	"images.sandbox_image":         true,
	"metrics.address":              true,
	"metrics.tls_cert_file":        true,
	"metrics.tls_key_file":         true,
	"metrics.leak_audit_interval":  true,
	"debug.address":                true,
}

// tracingNotReloaded is logged on every reload: tracing has no config key, it is set up
// once at start from the OTEL_* environment, which a running process cannot see change.
const tracingNotReloaded = "SIGHUP: tracing not reloaded: it follows the OTEL_* environment keelson started with; changing it needs a restart"

// Reload applies what changed in cfg (a validated config) that can change without a
// restart, and logs the changed keys that cannot. Pods and containers are not
// touched. It returns the keys applied and the keys that need a restart. It also
// logs that tracing (the OTEL_* environment) needs a restart to change.
func (d *Daemon) Reload(cfg config.Config) (applied, needRestart []string) {
	klog.InfoS(tracingNotReloaded, "tracing", map[bool]string{true: "on", false: "off"}[tracing.Enabled()])
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	next := d.cfg
	for _, key := range config.Changed(d.cfg, cfg) {
		if !reloadable[key] {
			needRestart = append(needRestart, key)
			continue
		}
		applied = append(applied, key)
	}
	if len(applied) == 0 {
		return applied, needRestart
	}
	next.LogLevel = cfg.LogLevel
	next.StatsInterval = cfg.StatsInterval
	next.Images.RegistryConfigDir, next.Images.AuthFile, next.Images.PullProgressTimeout =
		cfg.Images.RegistryConfigDir, cfg.Images.AuthFile, cfg.Images.PullProgressTimeout
	next.Metrics, next.Debug = cfg.Metrics, cfg.Debug

	d.images.SetPullOptions(images.PullOptions{
		RegistryConfigDir:   next.Images.RegistryConfigDir,
		AuthFile:            next.Images.AuthFile,
		PullProgressTimeout: next.Images.PullProgressTimeout.D(),
	})
	if cfg.Images.SandboxImage != d.cfg.Images.SandboxImage {
		if err := d.images.SetSandboxImage(cfg.Images.SandboxImage); err != nil {
			klog.ErrorS(err, "Reload: images.sandbox_image kept")
		} else {
			next.Images.SandboxImage = cfg.Images.SandboxImage
		}
	}
	if next.StatsInterval != d.cfg.StatsInterval {
		d.stats.SetInterval(next.StatsInterval.D())
	}
	if next.Metrics != d.cfg.Metrics || next.Debug != d.cfg.Debug {
		if err := d.serveObservability(d.bg, next); err != nil {
			// The old endpoints are closed: say so loudly, keep the rest.
			klog.ErrorS(err, "Reload: the metrics or debug endpoint could not be served")
		}
	}
	d.cfg = next
	return applied, needRestart
}

// config is the configuration in effect (reloaded keys included).
func (d *Daemon) config() config.Config {
	d.cfgMu.RLock()
	defer d.cfgMu.RUnlock()
	return d.cfg
}
