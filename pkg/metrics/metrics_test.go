package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPullFailureReason(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("image x not found: %w", errdefs.ErrNotFound):            "not_found",
		fmt.Errorf("authentication failed: %w", errdefs.ErrUnauthenticated): "unauthenticated",
		fmt.Errorf("denied: %w", errdefs.ErrPermissionDenied):               "permission_denied",
		fmt.Errorf("registry unreachable: %w", errdefs.ErrUnavailable):      "unavailable",
		fmt.Errorf("stalled: %w", context.DeadlineExceeded):                 "unavailable",
		fmt.Errorf("pulling: %w", context.Canceled):                         "canceled",
		fmt.Errorf("something else"):                                        "other",
	} {
		if got := pullFailureReason(err); got != want {
			t.Errorf("pullFailureReason(%v) = %s, want %s", err, got, want)
		}
	}
}

// Every state is reported (0 when none); leaks only once an audit ran; a nil source's
// metrics are left out.
func TestStateCollector(t *testing.T) {
	var auditAt time.Time
	c := NewStateCollector(Sources{
		PodStates:       []string{"ready", "notready"},
		Pods:            func() map[string]int { return map[string]int{"ready": 2} },
		ContainerStates: []string{"running", "exited"},
		Containers:      func() map[string]int { return map[string]int{"exited": 1} },
		ContainerdUp:    func() bool { return true },
		Leaks:           func() (map[string]int, time.Time) { return map[string]int{"netns": 3}, auditAt },
		LeakKinds:       []string{"netns", "ip"},
	})
	want := `
# HELP keelson_containerd_up 1 when containerd answers keelson's health check, else 0.
# TYPE keelson_containerd_up gauge
keelson_containerd_up 1
# HELP keelson_containers Containers by state.
# TYPE keelson_containers gauge
keelson_containers{state="exited"} 1
keelson_containers{state="running"} 0
# HELP keelson_pods Pod sandboxes by state.
# TYPE keelson_pods gauge
keelson_pods{state="notready"} 0
keelson_pods{state="ready"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	auditAt = time.Unix(1700000000, 0)
	if n := testutil.CollectAndCount(c, "keelson_leaks"); n != 2 {
		t.Errorf("keelson_leaks has %d series, want one per kind (2)", n)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("the collector is inconsistent: %v", err)
	}
}

// The metrics endpoint serves the registry over a unix socket (mode 0600).
func TestServeMetricsUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	s, err := ServeMetrics(Endpoint{Address: "unix://" + path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ImagePullBytes.Add(0)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://keelson/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, name := range []string{"keelson_image_pull_bytes_total", "go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// A failed CNI operation moves keelson_cni_operation_failures_total for its operation
// only; a successful one does not move it.
func TestObserveCNIFailures(t *testing.T) {
	failures := func(op string) float64 { return testutil.ToFloat64(CNIFailures.WithLabelValues(op)) }
	addBefore, delBefore := failures("add"), failures("del")
	ObserveCNI("add", time.Now(), nil)
	if got := failures("add"); got != addBefore {
		t.Errorf("a successful ADD moved the failures: %v → %v", addBefore, got)
	}
	ObserveCNI("add", time.Now(), errors.New("plugin failed"))
	if got := failures("add"); got != addBefore+1 {
		t.Errorf(`keelson_cni_operation_failures_total{operation="add"} = %v after a failed ADD, want %v`, got, addBefore+1)
	}
	if got := failures("del"); got != delBefore {
		t.Errorf("a failed ADD moved the DEL failures: %v → %v", delBefore, got)
	}
	ObserveCNI("del", time.Now(), errors.New("plugin failed"))
	if got := failures("del"); got != delBefore+1 {
		t.Errorf(`keelson_cni_operation_failures_total{operation="del"} = %v after a failed DEL, want %v`, got, delBefore+1)
	}
	// The scrape shows it under its documented name.
	want := fmt.Sprintf(`
# HELP keelson_cni_operation_failures_total CNI operations that failed, by operation (add, del, gc).
# TYPE keelson_cni_operation_failures_total counter
keelson_cni_operation_failures_total{operation="add"} %v
keelson_cni_operation_failures_total{operation="del"} %v
`, addBefore+1, delBefore+1)
	if err := testutil.GatherAndCompare(Registry, strings.NewReader(want), "keelson_cni_operation_failures_total"); err != nil {
		t.Error(err)
	}
}
