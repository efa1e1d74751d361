package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc/credentials"

	"github.com/keelson/keelson/pkg/config"
)

// listenUnix listens on the CRI socket with mode 0660, owned by root and group. A
// socket file left by a crash is removed first; the caller holds the socket's lock,
// so no live keelson is behind it.
func listenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	gid := 0
	if group != "" {
		var err error
		if gid, err = lookupGroup(group); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chown(path, 0, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("chown %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return l, nil
}

func lookupGroup(group string) (int, error) {
	if gid, err := strconv.Atoi(group); err == nil {
		return gid, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("grpc.socket_group %q: %w", group, err)
	}
	return strconv.Atoi(g.Gid)
}

// tcpCredentials builds mutual-TLS server credentials: clients must present a
// certificate signed by the configured CA.
func tcpCredentials(g config.GRPC) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(g.TLSCertFile, g.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading grpc.tls_cert_file/tls_key_file: %w", err)
	}
	pem, err := os.ReadFile(g.TLSClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("reading grpc.tls_client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("grpc.tls_client_ca_file %s holds no PEM certificate", g.TLSClientCAFile)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}), nil
}
