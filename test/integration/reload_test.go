package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/registry"
)

// unixGet GETs path from an HTTP server on a unix socket.
func unixGet(socket, path string) (int, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	resp, err := client.Get("http://keelson" + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// SIGHUP applies each reloadable key to a running keelson, one at a time, and names
// the changed keys that need a restart; the pod running meanwhile is not touched.
func TestReloadPerKey(t *testing.T) {
	r := busyboxRegistry(t, "docker.io/keelson/private:1", "docker.io/keelson/private:2")
	r.SetMiddleware(registry.BasicAuth("alice", "s3cret"))
	dir := harness.NewDir(t, "ktreload-")
	debugSocket, metricsSocket := filepath.Join(dir, "debug.sock"), filepath.Join(dir, "metrics.sock")
	k := startWithRegistry(t, r, func(o *harness.Options) {
		o.StatsInterval = time.Hour
		o.ExtraConfig = "\n[debug]\n  address = \"\"\n"
	})
	ctx := harness.Ctx(t)
	p := newPod(t, k, "reload")

	t.Run("log_level", func(t *testing.T) {
		k.Reload(t, "log_level = 4", "log_level = 6")
		if _, err := k.Runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(k.Log(), `"CRI call" method="ListPodSandbox" request=`) {
			t.Error("at log_level 6 the request was not logged")
		}
		k.Reload(t, "log_level = 6", "log_level = 4")
	})

	t.Run("images.auth_file", func(t *testing.T) {
		if _, err := pull(t, k, "docker.io/keelson/private:1", nil); err == nil {
			t.Fatal("a pull without credentials succeeded")
		}
		authFile := filepath.Join(dir, "auth.json")
		auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
		if err := os.WriteFile(authFile, fmt.Appendf(nil, `{"auths": {%q: {"auth": %q}}}`, r.Addr, auth), 0o600); err != nil {
			t.Fatal(err)
		}
		line := k.Reload(t, `auth_file = ""`, fmt.Sprintf("auth_file = %q", authFile))
		if !strings.Contains(line, "images.auth_file") {
			t.Errorf("the reload does not name the key: %s", line)
		}
		if _, err := pull(t, k, "docker.io/keelson/private:1", nil); err != nil {
			t.Errorf("pull with the reloaded auth file: %v", err)
		}
	})

	t.Run("images.registry_config_dir", func(t *testing.T) {
		empty := filepath.Join(dir, "no-mirrors")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			t.Fatal(err)
		}
		k.Reload(t, fmt.Sprintf("registry_config_dir = %q", k.CertsDir), fmt.Sprintf("registry_config_dir = %q", empty))
		if _, err := pull(t, k, "docker.io/keelson/private:2", nil); err == nil {
			t.Fatal("a pull without the mirror's hosts.toml succeeded")
		}
		k.Reload(t, fmt.Sprintf("registry_config_dir = %q", empty), fmt.Sprintf("registry_config_dir = %q", k.CertsDir))
		if _, err := pull(t, k, "docker.io/keelson/private:2", nil); err != nil {
			t.Errorf("pull through the mirror again: %v", err)
		}
	})

	t.Run("images.pull_progress_timeout", func(t *testing.T) {
		k.Reload(t, `pull_progress_timeout = "1m"`, `pull_progress_timeout = "42s"`)
		st, err := k.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st.Info["config"], `"PullProgressTimeout":"42s"`) {
			t.Errorf("Status config after the reload: %s", st.Info["config"])
		}
	})

	t.Run("images.sandbox_image", func(t *testing.T) {
		pinned := func(ref string) bool {
			st, err := k.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
			if err != nil || st.GetImage() == nil {
				t.Fatalf("ImageStatus %s: %v %v", ref, st, err)
			}
			return st.GetImage().GetPinned()
		}
		if pinned("docker.io/keelson/private:1") {
			t.Fatal("an image is pinned before it is the sandbox image")
		}
		k.Reload(t, `sandbox_image = "registry.k8s.io/pause:3.10"`, `sandbox_image = "docker.io/keelson/private:1"`)
		if !pinned("docker.io/keelson/private:1") {
			t.Error("the reloaded sandbox image is not reported pinned")
		}
	})

	t.Run("stats_interval", func(t *testing.T) {
		key := "keelson_stats_sample_duration_seconds_count"
		before := scrape(t, k)[key]
		k.Reload(t, `stats_interval = "1h0m0s"`, `stats_interval = "1s"`)
		time.Sleep(3 * time.Second)
		if after := scrape(t, k)[key]; after < before+2 {
			t.Errorf("%s went from %v to %v in 3s at a 1s interval", key, before, after)
		}
	})

	t.Run("metrics.leak_audit_interval", func(t *testing.T) {
		if _, found := scrape(t, k)["keelson_leak_audit_timestamp_seconds"]; found {
			t.Fatal("a leak audit ran while it was off")
		}
		k.Reload(t, `leak_audit_interval = "0s"`, `leak_audit_interval = "1s"`)
		waitMetricPresent(t, k, "keelson_leak_audit_timestamp_seconds")
	})

	t.Run("metrics.address", func(t *testing.T) {
		old := k.MetricsURL(t)
		k.Reload(t, `address = "127.0.0.1:0"`, fmt.Sprintf("address = %q", "unix://"+metricsSocket))
		if resp, err := http.Get(old + "/metrics"); err == nil {
			resp.Body.Close()
			t.Errorf("the old metrics address still answers")
		}
		if code, err := unixGet(metricsSocket, "/metrics"); err != nil || code != http.StatusOK {
			t.Errorf("metrics on the new socket: %d %v", code, err)
		}
	})

	t.Run("metrics.tls_cert_file", func(t *testing.T) {
		// From the unix socket above back to TCP, now over HTTPS with a self-signed
		// certificate.
		cert := newCert(t, "keelson-metrics", nil, true)
		certFile, keyFile := cert.write(t, dir, "metrics")
		line := k.Reload(t, fmt.Sprintf("address = %q", "unix://"+metricsSocket),
			fmt.Sprintf("address = \"127.0.0.1:0\"\n  tls_cert_file = %q\n  tls_key_file = %q", certFile, keyFile))
		for _, key := range []string{"metrics.address", "metrics.tls_cert_file", "metrics.tls_key_file"} {
			if !strings.Contains(line, key) {
				t.Errorf("the reload does not name %s: %s", key, line)
			}
		}
		url := strings.Replace(k.MetricsURL(t), "http://", "https://", 1)
		pool := x509.NewCertPool()
		pool.AddCert(cert.cert)
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := client.Get(url + "/metrics")
		if err != nil {
			t.Fatalf("scraping over TLS: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "keelson_pods{") {
			t.Errorf("metrics over TLS: %s, %d bytes without keelson_pods", resp.Status, len(b))
		}
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(cert.cert) {
			t.Error("the endpoint does not present the configured certificate")
		}
		if code, err := unixGet(metricsSocket, "/metrics"); err == nil {
			t.Errorf("the old metrics socket still answers: %d", code)
		}
		plain := strings.Replace(url, "https://", "http://", 1)
		if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(plain + "/metrics"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("the TLS endpoint serves metrics over plain HTTP")
			}
		}
	})

	t.Run("debug.address", func(t *testing.T) {
		if _, err := unixGet(debugSocket, "/debug/pprof/"); err == nil {
			t.Fatal("the debug endpoint answers while off")
		}
		k.Reload(t, "[debug]\n  address = \"\"", fmt.Sprintf("[debug]\n  address = %q", "unix://"+debugSocket))
		if code, err := unixGet(debugSocket, "/debug/pprof/goroutine?debug=2"); err != nil || code != http.StatusOK {
			t.Errorf("goroutine dump on the debug socket: %d %v", code, err)
		}
	})

	t.Run("a key that needs a restart", func(t *testing.T) {
		// Tracing follows the OTEL_* environment: every reload says it needs a restart.
		const tracingLine = `"SIGHUP: tracing not reloaded: it follows the OTEL_* environment keelson started with; changing it needs a restart"`
		before := strings.Count(k.Log(), tracingLine)
		line := k.Reload(t, `shutdown_grace = "5s"`, `shutdown_grace = "7s"`)
		if !strings.Contains(line, `needRestart=["grpc.shutdown_grace"]`) || !strings.Contains(line, "applied=null") {
			t.Errorf("the reload line does not say the key needs a restart: %s", line)
		}
		if after := strings.Count(k.Log(), tracingLine); after != before+1 {
			t.Errorf("the reload logged the tracing line %d times, want once (%s)", after-before, tracingLine)
		}
	})

	st, err := k.Runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.id})
	if err != nil || st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Errorf("the pod after the reloads: %v %v", st.GetStatus().GetState(), err)
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func waitMetricPresent(t *testing.T, k *harness.Keelson, key string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		if _, found := scrape(t, k)[key]; found {
			return
		}
	}
	t.Fatalf("%s never appeared", key)
}
