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

	"github.com/coreos/go-systemd/v22/activation"
	"google.golang.org/grpc/credentials"

	"github.com/keelson/keelson/pkg/config"
)

// activatedSocket returns the CRI socket systemd handed over (socket activation:
// LISTEN_FDS, keelson.socket), if it did. The LISTEN_* variables are cleared so the
// containerd child does not take them for its own. systemd owns the socket file: it
// stays when keelson stops, with systemd's mode and group. A handed-over socket that
// is not grpc.socket is an error: kubelet would be looking elsewhere.
func activatedSocket(path string) (net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil
	}
	var names []string
	for _, f := range files {
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("socket activation: file descriptor %s: %w", f.Name(), err)
		}
		if ul, ok := l.(*net.UnixListener); ok && ul.Addr().String() == path {
			ul.SetUnlinkOnClose(false)
			return ul, nil
		}
		names = append(names, l.Addr().String())
		l.Close()
	}
	return nil, fmt.Errorf("socket activation passed %v, but grpc.socket is %s: make ListenStream= in keelson.socket and grpc.socket the same path", names, path)
}

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
