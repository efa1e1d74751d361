// Package metrics holds keelson's Prometheus metrics and serves them. The metrics
// that code paths move (CRI calls, pulls, CNI operations, stats sampling) are
// package variables in keelson's own registry; the ones that describe state (pods and
// containers by state, images, containerd's health, leaks) are read at scrape time
// from the daemon's services through Sources.
package metrics

import (
	"time"

	"github.com/containerd/errdefs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "keelson"

// Registry is keelson's registry: its own metrics and the Go runtime's and process's.
var Registry = prometheus.NewRegistry()

var (
	// CRIRequestDuration times every CRI call by method and gRPC code.
	CRIRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "cri", Name: "request_duration_seconds",
		Help:    "Time keelson took to answer a CRI call, by method and gRPC status code.",
		Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"method", "code"})

	// ImagePulls counts the pulls done (shared pulls of one image count once).
	ImagePulls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "pulls_total",
		Help: "Image pulls keelson ran, by result (success, failure).",
	}, []string{"result"})
	// ImagePullFailures counts failed pulls by reason.
	ImagePullFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "pull_failures_total",
		Help: "Failed image pulls by reason: not_found, unauthenticated, permission_denied, unavailable (registry unreachable or stalled), canceled, other.",
	}, []string{"reason"})
	// ImagePullBytes counts the bytes read from registries.
	ImagePullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "pull_bytes_total",
		Help: "Bytes read from registries by image pulls.",
	})
	// ImagePullDuration times pulls, unpacking included.
	ImagePullDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "image", Name: "pull_duration_seconds",
		Help:    "Time an image pull took, download and unpack, successful or not.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	})

	// CNIDuration times CNI operations (add, del, gc).
	CNIDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "cni", Name: "operation_duration_seconds",
		Help:    "Time a CNI operation on a pod's network took, by operation (add, del, gc).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"operation"})
	// CNIFailures counts failed CNI operations.
	CNIFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "cni", Name: "operation_failures_total",
		Help: "CNI operations that failed, by operation (add, del, gc).",
	}, []string{"operation"})

	// ContainerdReconnects counts containerd coming back after being unreachable.
	ContainerdReconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "containerd", Name: "reconnects_total",
		Help: "Times containerd answered again after keelson had found it unreachable.",
	})

	// StatsSampleDuration times one sampling of every container's and pod's stats.
	StatsSampleDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "stats", Name: "sample_duration_seconds",
		Help:    "Time one sampling of every container's and pod's CPU, memory, processes and network took.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		CRIRequestDuration, ImagePulls, ImagePullFailures, ImagePullBytes, ImagePullDuration,
		CNIDuration, CNIFailures, ContainerdReconnects, StatsSampleDuration,
	)
}

// ObserveCNI records one CNI operation that started at start.
func ObserveCNI(operation string, start time.Time, err error) {
	CNIDuration.WithLabelValues(operation).Observe(time.Since(start).Seconds())
	if err != nil {
		CNIFailures.WithLabelValues(operation).Inc()
	}
}

// ObservePull records one pull that started at start and read bytes from registries.
func ObservePull(start time.Time, bytes int64, err error) {
	ImagePullDuration.Observe(time.Since(start).Seconds())
	ImagePullBytes.Add(float64(bytes))
	if err == nil {
		ImagePulls.WithLabelValues("success").Inc()
		return
	}
	ImagePulls.WithLabelValues("failure").Inc()
	ImagePullFailures.WithLabelValues(pullFailureReason(err)).Inc()
}

func pullFailureReason(err error) string {
	switch {
	case errdefs.IsNotFound(err):
		return "not_found"
	case errdefs.IsUnauthorized(err):
		return "unauthenticated"
	case errdefs.IsPermissionDenied(err):
		return "permission_denied"
	case errdefs.IsUnavailable(err), errdefs.IsDeadlineExceeded(err):
		return "unavailable"
	case errdefs.IsCanceled(err):
		return "canceled"
	}
	return "other"
}
