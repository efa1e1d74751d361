package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
)

type certPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newCert(t *testing.T, cn string, parent *certPair, isCA bool) *certPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certPair{cert: cert, key: key, der: der}
}

func (c *certPair) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	kb, _ := x509.MarshalECPrivateKey(c.key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTCPMutualTLS(t *testing.T) {
	harness.RequireRoot(t)
	dir := harness.NewDir(t, "ktls-")
	ca := newCert(t, "keelson-test-ca", nil, true)
	caFile, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := newCert(t, "keelson", ca, false).write(t, dir, "server")
	cliCert, cliKey := newCert(t, "kubelet", ca, false).write(t, dir, "client")
	stranger := newCert(t, "stranger-ca", nil, true)
	strCert, strKey := newCert(t, "stranger", stranger, false).write(t, dir, "stranger")

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	k := harness.Prepare(t, harness.Options{})
	cfg, err := os.ReadFile(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	// Put the TLS keys into the config's [grpc] table.
	tlsKeys := fmt.Sprintf("[grpc]\n  tcp_address = %q\n  tls_cert_file = %q\n  tls_key_file = %q\n  tls_client_ca_file = %q\n", addr, srvCert, srvKey, caFile)
	if err := os.WriteFile(k.Config, []byte(strings.Replace(string(cfg), "[grpc]\n", tlsKeys, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	k.Start(harness.Options{})

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	call := func(certFile, keyFile string) error {
		tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		if certFile != "" {
			pair, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}
	if err := call(cliCert, cliKey); err != nil {
		t.Errorf("client with a CA-signed certificate refused: %v", err)
	}
	if err := call("", ""); err == nil {
		t.Errorf("client without a certificate was served")
	}
	if err := call(strCert, strKey); err == nil {
		t.Errorf("client with a certificate from another CA was served")
	}
}
