package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sources are what the state metrics are read from at each scrape; a nil source's
// metrics are left out.
type Sources struct {
	PodStates       []string              // every state a pod can be in (each is reported, 0 when none)
	Pods            func() map[string]int // pods by state
	ContainerStates []string
	Containers      func() map[string]int
	Images          func() int
	ContainerdUp    func() bool
	// ContainerdRestarts: how often the supervised containerd was restarted (nil
	// when containerd is external).
	ContainerdRestarts func() int
	// Leaks: the latest leak audit's findings by kind, and when it ran (zero: not yet).
	Leaks     func() (map[string]int, time.Time)
	LeakKinds []string
}

var (
	podsDesc = prometheus.NewDesc(namespace+"_pods", "Pod sandboxes by state.", []string{"state"}, nil)
	ctrsDesc = prometheus.NewDesc(namespace+"_containers", "Containers by state.", []string{"state"}, nil)
	imgsDesc = prometheus.NewDesc(namespace+"_images", "Images in keelson's store (by ID).", nil, nil)
	upDesc   = prometheus.NewDesc(namespace+"_containerd_up", "1 when containerd answers keelson's health check, else 0.", nil, nil)
	restDesc = prometheus.NewDesc(namespace+"_supervised_containerd_restarts_total",
		"Times keelson restarted the containerd it supervises after it died.", nil, nil)
	leakDesc = prometheus.NewDesc(namespace+"_leaks",
		"What the background leak audit found that no pod or container owns, by kind (netns, cni, ip, iptables, cgroup, container, task, shim, snapshot, lease, file): what keelson doctor --fix would remove.", []string{"kind"}, nil)
	auditDesc = prometheus.NewDesc(namespace+"_leak_audit_timestamp_seconds", "When the latest background leak audit ran (Unix time).", nil, nil)
)

// stateCollector reports Sources at scrape time.
type stateCollector struct{ src Sources }

// NewStateCollector returns the collector of src's metrics, to register in Registry.
func NewStateCollector(src Sources) prometheus.Collector { return stateCollector{src} }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{podsDesc, ctrsDesc, imgsDesc, upDesc, restDesc, leakDesc, auditDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	byState := func(desc *prometheus.Desc, states []string, counts map[string]int) {
		for _, s := range states {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(counts[s]), s)
		}
	}
	if c.src.Pods != nil {
		byState(podsDesc, c.src.PodStates, c.src.Pods())
	}
	if c.src.Containers != nil {
		byState(ctrsDesc, c.src.ContainerStates, c.src.Containers())
	}
	if c.src.Images != nil {
		ch <- prometheus.MustNewConstMetric(imgsDesc, prometheus.GaugeValue, float64(c.src.Images()))
	}
	if c.src.ContainerdUp != nil {
		up := 0.0
		if c.src.ContainerdUp() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up)
	}
	if c.src.ContainerdRestarts != nil {
		ch <- prometheus.MustNewConstMetric(restDesc, prometheus.CounterValue, float64(c.src.ContainerdRestarts()))
	}
	if c.src.Leaks != nil {
		if leaks, at := c.src.Leaks(); !at.IsZero() {
			byState(leakDesc, c.src.LeakKinds, leaks)
			ch <- prometheus.MustNewConstMetric(auditDesc, prometheus.GaugeValue, float64(at.Unix()))
		}
	}
}
