package metrics

import (
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// Endpoint is where an HTTP endpoint listens: "host:port" (TCP), or "unix://<path>"
// or an absolute path (a unix socket, mode 0600). With both TLS files set, TCP is
// served over HTTPS.
type Endpoint struct {
	Address     string
	TLSCertFile string
	TLSKeyFile  string
}

// Server is a running HTTP endpoint.
type Server struct {
	srv  *http.Server
	l    net.Listener
	tls  bool
	path string // the unix socket to remove on Close
}

// Addr is the address the server listens on (the port chosen when :0 was asked).
func (s *Server) Addr() string { return s.l.Addr().String() }

// URL is the server's base URL for a TCP listener.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	if s.path != "" {
		_ = os.Remove(s.path)
	}
	return err
}

// ServeMetrics serves Registry at /metrics on e.
func ServeMetrics(e Endpoint) (*Server, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{Registry: Registry}))
	return serve(e, mux)
}

// ServeDebug serves Go's profiles at /debug/pprof/ on e (a goroutine dump:
// /debug/pprof/goroutine?debug=2).
func ServeDebug(e Endpoint) (*Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return serve(e, mux)
}

func serve(e Endpoint, h http.Handler) (*Server, error) {
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	var err error
	if path, ok := unixPath(e.Address); ok {
		_ = os.Remove(path)
		if s.l, err = net.Listen("unix", path); err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			s.l.Close()
			return nil, err
		}
		s.path = path
	} else if s.l, err = net.Listen("tcp", e.Address); err != nil {
		return nil, err
	}
	s.tls = e.TLSCertFile != "" && e.TLSKeyFile != "" && s.path == ""
	go func() {
		var err error
		if s.tls {
			err = s.srv.ServeTLS(s.l, e.TLSCertFile, e.TLSKeyFile)
		} else {
			err = s.srv.Serve(s.l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "HTTP endpoint stopped", "address", e.Address)
		}
	}()
	return s, nil
}

func unixPath(address string) (string, bool) {
	if p, ok := strings.CutPrefix(address, "unix://"); ok {
		return p, true
	}
	return address, strings.HasPrefix(address, "/")
}
