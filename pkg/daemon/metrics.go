package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/doctor"
	"github.com/keelson/keelson/pkg/metrics"
	"github.com/keelson/keelson/pkg/sandbox"
)

// leakKinds are the kinds of doctor findings keelson_leaks reports (0 when none).
var leakKinds = []string{"netns", "cni", "ip", "iptables", "cgroup", "container", "task", "shim", "snapshot", "lease", "file"}

// observability is what keelson serves about itself: the state metrics, the
// /metrics and /debug/pprof/ endpoints, and the background leak audit.
type observability struct {
	state     prometheus.Collector
	servers   []*metrics.Server
	stopAudit context.CancelFunc
	leaks     leakAudit
}

// startObservability registers the state metrics, serves the configured endpoints
// and starts the leak audit.
func (d *Daemon) startObservability(bg context.Context) error {
	src := metrics.Sources{
		PodStates:       []string{"ready", "notready"},
		Pods:            d.podStates,
		ContainerStates: []string{"created", "running", "exited", "unknown"},
		Containers:      d.containerStates,
		Images:          func() int { return len(d.images.List()) },
		ContainerdUp:    func() bool { ready, _, _ := d.conn.Health(); return ready },
		Leaks:           d.obs.leaks.get,
		LeakKinds:       leakKinds,
	}
	if d.sup != nil {
		src.ContainerdRestarts = d.sup.Restarts
	}
	d.obs.state = metrics.NewStateCollector(src)
	if err := metrics.Registry.Register(d.obs.state); err != nil {
		return fmt.Errorf("registering the state metrics: %w", err)
	}
	return d.serveObservability(bg, d.cfg)
}

// serveObservability serves cfg's endpoints and runs its leak audit, in place of
// what ran before (a reload).
func (d *Daemon) serveObservability(bg context.Context, cfg config.Config) error {
	d.closeEndpoints()
	if d.obs.stopAudit != nil {
		d.obs.stopAudit()
		d.obs.stopAudit = nil
	}
	for _, e := range []struct {
		what  string
		serve func(metrics.Endpoint) (*metrics.Server, error)
		ep    metrics.Endpoint
	}{
		{"Metrics", metrics.ServeMetrics, metrics.Endpoint{Address: cfg.Metrics.Address, TLSCertFile: cfg.Metrics.TLSCertFile, TLSKeyFile: cfg.Metrics.TLSKeyFile}},
		{"Debug", metrics.ServeDebug, metrics.Endpoint{Address: cfg.Debug.Address}},
	} {
		if e.ep.Address == "" {
			continue
		}
		srv, err := e.serve(e.ep)
		if err != nil {
			return fmt.Errorf("%s endpoint on %s: %w", strings.ToLower(e.what), e.ep.Address, err)
		}
		d.obs.servers = append(d.obs.servers, srv)
		klog.InfoS(e.what+" endpoint listening", "address", srv.Addr())
	}
	if interval := cfg.Metrics.LeakAuditInterval.D(); interval > 0 {
		node := &doctor.Node{Conn: d.conn, Client: d.conn.Client, Snapshotter: cfg.Containerd.Snapshotter, Network: d.network,
			RootDir: cfg.RootDir, StateDir: cfg.StateDir, ShimMinAge: time.Minute}
		ctx, cancel := context.WithCancel(bg)
		d.obs.stopAudit = cancel
		go every(ctx, interval, func(ctx context.Context) { d.obs.leaks.run(ctx, node) })
	}
	return nil
}

func (d *Daemon) closeEndpoints() {
	for _, s := range d.obs.servers {
		_ = s.Close()
	}
	d.obs.servers = nil
}

// stopObservability closes the endpoints and unregisters the state metrics.
func (d *Daemon) stopObservability() {
	d.closeEndpoints()
	if d.obs.state != nil {
		metrics.Registry.Unregister(d.obs.state)
	}
}

func (d *Daemon) podStates() map[string]int {
	out := map[string]int{}
	for _, sb := range d.sandboxes.List() {
		if sb.Status().State == sandbox.StateReady {
			out["ready"]++
		} else {
			out["notready"]++
		}
	}
	return out
}

func (d *Daemon) containerStates() map[string]int {
	out := map[string]int{}
	for _, c := range d.containers.List() {
		switch c.Status().State {
		case container.StateCreated:
			out["created"]++
		case container.StateRunning:
			out["running"]++
		case container.StateExited:
			out["exited"]++
		default:
			out["unknown"]++
		}
	}
	return out
}

// leakAudit keeps the findings of the background doctor audit. A finding counts once
// two audits in a row saw it, so what a pod being created or removed holds for a
// moment (a network namespace before its sandbox record exists) is not reported.
type leakAudit struct {
	mu       sync.Mutex
	previous map[string]bool
	counts   map[string]int
	at       time.Time
}

func (l *leakAudit) run(ctx context.Context, node *doctor.Node) {
	findings, err := node.Audit(ctx)
	if err != nil {
		klog.ErrorS(err, "Leak audit")
		return
	}
	l.record(findings)
}

// record counts the findings an audit made that the previous one made too.
func (l *leakAudit) record(findings []doctor.Finding) {
	seen, counts := map[string]bool{}, map[string]int{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range findings {
		seen[f.String()] = true
		if l.previous[f.String()] {
			counts[f.Kind]++
		}
	}
	if n := len(counts); n > 0 {
		klog.V(2).InfoS("Leak audit found what nothing owns (keelson doctor lists it)", "kinds", n)
	}
	l.previous, l.counts, l.at = seen, counts, time.Now()
}

func (l *leakAudit) get() (map[string]int, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts, l.at
}
