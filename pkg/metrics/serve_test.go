package metrics

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed server certificate for 127.0.0.1 and its key
// (PEM) to dir and returns the files and the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "keelson-metrics"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "metrics.crt"), filepath.Join(dir, "metrics.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// With both TLS files set, a TCP metrics endpoint serves HTTPS with that certificate:
// a client trusting it scrapes /metrics; one that does not, or that speaks plain
// HTTP, gets no metrics.
func TestServeMetricsTLS(t *testing.T) {
	certFile, keyFile, cert := selfSigned(t, t.TempDir())
	s, err := ServeMetrics(Endpoint{Address: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL() = %s, want https://", s.URL())
	}
	ImagePullBytes.Add(0)

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics over TLS: %s", resp.Status)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !resp.TLS.PeerCertificates[0].Equal(cert) {
		t.Error("the endpoint did not present the configured certificate")
	}
	for _, name := range []string{"keelson_image_pull_bytes_total", "go_goroutines"} {
		if !strings.Contains(string(b), name) {
			t.Errorf("/metrics over TLS lacks %s", name)
		}
	}

	// A client that does not trust the certificate refuses the server.
	stranger := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()}}}
	if resp, err := stranger.Get(s.URL() + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("a client not trusting the certificate scraped the endpoint")
	} else if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("untrusted client: %v, want a certificate verification error", err)
	}
	// Plain HTTP gets Go's 400 "client sent an HTTP request to an HTTPS server".
	plain := &http.Client{Timeout: 10 * time.Second}
	resp, err = plain.Get("http://" + s.Addr() + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), "keelson_") {
			t.Errorf("plain HTTP to the TLS endpoint: %s %q", resp.Status, b)
		}
	}
}
