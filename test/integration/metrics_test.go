package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// scrape reads keelson's /metrics into "name{label="value",...}" → value (labels
// sorted; histograms by their _count and _sum).
func scrape(t *testing.T, k *harness.Keelson) map[string]float64 {
	t.Helper()
	resp, err := http.Get(k.MetricsURL(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[strings.Replace(key, name, name+"_count", 1)] = float64(m.GetHistogram().GetSampleCount())
				out[strings.Replace(key, name, name+"_sum", 1)] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// A Prometheus scrape shows the metrics moving as a pod starts and stops, an image
// pull fails, and a leak appears and goes.
func TestMetrics(t *testing.T) {
	debugSocket := filepath.Join(t.TempDir(), "debug.sock")
	k := startWithRegistry(t, reg, func(o *harness.Options) {
		o.LeakAuditInterval = time.Second
		o.StatsInterval = time.Second
		o.ExtraConfig = fmt.Sprintf("\n[debug]\n  address = %q\n", "unix://"+debugSocket)
	})
	ctx := harness.Ctx(t)
	expect := func(m map[string]float64, key string, ok func(float64) bool, want string) {
		t.Helper()
		v, found := m[key]
		if !found {
			t.Errorf("%s is missing", key)
		} else if !ok(v) {
			t.Errorf("%s = %v, want %s", key, v, want)
		}
	}
	eq := func(n float64) (func(float64) bool, string) {
		return func(v float64) bool { return v == n }, fmt.Sprint(n)
	}
	atLeast := func(n float64) (func(float64) bool, string) {
		return func(v float64) bool { return v >= n }, fmt.Sprintf(">= %v", n)
	}

	mustPull(t, k, images.Busybox)
	if _, err := pull(t, k, "docker.io/keelson/does-not-exist:1", nil); err == nil {
		t.Fatal("pulling a missing image succeeded")
	}
	p := newPod(t, k, "metrics")
	p.run(t, ctrConfig("main", images.Busybox, "sleep", "1000"))
	time.Sleep(1500 * time.Millisecond) // a background stats sample
	m := scrape(t, k)
	for key, want := range map[string]float64{
		`keelson_pods{state="ready"}`:                           1,
		`keelson_pods{state="notready"}`:                        0,
		`keelson_containers{state="running"}`:                   1,
		`keelson_containers{state="exited"}`:                    0,
		`keelson_containerd_up`:                                 1,
		`keelson_supervised_containerd_restarts_total`:          0,
		`keelson_image_pulls_total{result="success"}`:           1,
		`keelson_image_pulls_total{result="failure"}`:           1,
		`keelson_image_pull_failures_total{reason="not_found"}`: 1,
	} {
		ok, w := eq(want)
		expect(m, key, ok, w)
	}
	for key, min := range map[string]float64{
		`keelson_cri_request_duration_seconds_count{code="OK",method="RunPodSandbox"}`:   1,
		`keelson_cri_request_duration_seconds_count{code="OK",method="StartContainer"}`:  1,
		`keelson_cri_request_duration_seconds_count{code="NotFound",method="PullImage"}`: 1,
		`keelson_cni_operation_duration_seconds_count{operation="add"}`:                  1,
		`keelson_image_pull_bytes_total`:                                                 1,
		`keelson_image_pull_duration_seconds_count`:                                      2,
		`keelson_images`: 1,
		`keelson_stats_sample_duration_seconds_count`: 1,
		`go_goroutines`:                 1,
		`process_resident_memory_bytes`: 1,
	} {
		ok, w := atLeast(min)
		expect(m, key, ok, w)
	}

	if _, err := k.Runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.id}); err != nil {
		t.Fatal(err)
	}
	m = scrape(t, k)
	for key, want := range map[string]float64{
		`keelson_pods{state="ready"}`:         0,
		`keelson_pods{state="notready"}`:      1,
		`keelson_containers{state="running"}`: 0,
		`keelson_containers{state="exited"}`:  1,
	} {
		ok, w := eq(want)
		expect(m, key, ok, w)
	}
	ok, w := atLeast(1)
	expect(m, `keelson_cni_operation_duration_seconds_count{operation="del"}`, ok, w)
	stopAndRemovePod(t, k, p.id)

	// A leak counts once two audits in a row have seen it, and goes with it.
	leak := filepath.Join(k.StateDir, "sandboxes", strings.Repeat("ab", 32))
	if err := os.MkdirAll(leak, 0o700); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, k, `keelson_leaks{kind="file"}`, 1)
	if err := os.RemoveAll(leak); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, k, `keelson_leaks{kind="file"}`, 0)
	m = scrape(t, k)
	expect(m, `keelson_leaks{kind="netns"}`, func(v float64) bool { return v == 0 }, "0")
	expect(m, `keelson_leak_audit_timestamp_seconds`, func(v float64) bool { return v > 0 }, "> 0")
	k.CheckNoLeaks(t)

	// The debug endpoint: a goroutine dump over its unix socket.
	if code, err := unixGet(debugSocket, "/debug/pprof/goroutine?debug=2"); err != nil || code != http.StatusOK {
		t.Errorf("goroutine dump: %d %v", code, err)
	}
}

// The failure counters move on their events: a CNI plugin failing ADD
// (keelson_cni_operation_failures_total) and the supervised containerd dying and
// coming back (keelson_containerd_reconnects_total).
func TestMetricsFailureCounters(t *testing.T) {
	k := startWithFailingPlugin(t, "")
	const cniFailures, reconnects = `keelson_cni_operation_failures_total{operation="add"}`, `keelson_containerd_reconnects_total`
	before := scrape(t, k)
	if v := before[cniFailures]; v != 0 {
		t.Fatalf("%s = %v before any pod", cniFailures, v)
	}
	if v, found := before[reconnects]; !found || v != 0 {
		t.Fatalf("%s = %v (present: %v) before containerd went away, want 0", reconnects, v, found)
	}

	_, err := k.Runtime.RunPodSandbox(harness.Ctx(t), &runtimeapi.RunPodSandboxRequest{Config: podConfig(k, "cnifail")})
	if err == nil || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("RunPodSandbox: %v, want the plugin's error", err)
	}
	waitMetric(t, k, cniFailures, 1)

	pids := k.ContainerdPids()
	if len(pids) != 1 {
		t.Fatalf("containerd children = %v", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, k, `keelson_supervised_containerd_restarts_total`, 1)
	waitMetric(t, k, reconnects, 1)
	waitMetric(t, k, `keelson_containerd_up`, 1)
	k.CheckNoLeaks(t)
}

func waitMetric(t *testing.T, k *harness.Keelson, key string, want float64) {
	t.Helper()
	var got float64
	var found bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if got, found = scrape(t, k)[key]; found && got == want {
			return
		}
	}
	t.Fatalf("%s = %v (present: %v), want %v", key, got, found, want)
}
