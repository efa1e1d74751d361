// Package streaming serves CRI Exec, Attach and PortForward sessions: the URLs those
// RPCs return point at this package's HTTP server, which kubelet or crictl then
// connect to. The protocols — SPDY (remotecommand v1–v4, portforward.k8s.io) and
// WebSocket (channel.k8s.io, base64.channel.k8s.io, v4.channel.k8s.io) — and the
// short-lived, single-use URL tokens are k8s.io/cri-streaming's; behind it a Runtime
// runs the sessions on pkg/container and the pods' network namespaces.
//
// cri-streaming does not negotiate the two WebSocket protocols kubectl-era clients
// offer first, so this package adds them on top of the library's pieces: the
// remotecommand v5.channel.k8s.io protocol (v4 plus a stdin half-close) through the
// library's wsstream channels, and port forwarding tunneled as SPDY over a WebSocket
// (SPDY/3.1+portforward.k8s.io), handed to the library's own SPDY handler.
package streaming

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// tokenTTL is how long a streaming URL stays valid: the library's request cache TTL.
const tokenTTL = time.Minute

// Config configures the streaming server.
type Config struct {
	// Address is the IP to listen on. An unspecified address (0.0.0.0, ::) listens on
	// every interface; URLs then name the loopback address, as kubelet runs on this node.
	Address string
	// Port to listen on; 0 picks a free port at start.
	Port int
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// IdleTimeout closes a session whose streams carried nothing this long.
	IdleTimeout time.Duration
	// StreamCreationTimeout bounds how long a SPDY client may take to open its streams.
	StreamCreationTimeout time.Duration
}

// Server is the streaming HTTP server.
type Server struct {
	cfg      Config
	lib      crstreaming.Server
	runtime  *Runtime
	listener *trackingListener
	http     *http.Server
	base     *url.URL

	mu      sync.Mutex
	pending map[string]pendingRequest // by token, until used or expired

	handlers sync.WaitGroup
}

// pendingRequest is a minted URL's request. Every request to the server first takes
// its token from here, so a URL serves one connection whatever the protocol.
type pendingRequest struct {
	kind    string // exec, attach or portforward
	req     any    // *ExecRequest, *AttachRequest or *PortForwardRequest
	expires time.Time
}

// New listens on the configured address and returns the server; Serve serves it.
func New(cfg Config, containers Containers, sandboxes Sandboxes) (*Server, error) {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = crstreaming.DefaultConfig.StreamIdleTimeout
	}
	if cfg.StreamCreationTimeout <= 0 {
		cfg.StreamCreationTimeout = crstreaming.DefaultConfig.StreamCreationTimeout
	}
	var tlsConfig *tls.Config
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("streaming TLS certificate: %w", err)
		}
		// HTTP/1.1 only: SPDY and WebSocket upgrades need it.
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	addr := net.JoinHostPort(cfg.Address, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: listening on %s: %w", addr, err)
	}
	s := &Server{
		cfg:      cfg,
		runtime:  &Runtime{Containers: containers, Sandboxes: sandboxes},
		listener: newTrackingListener(ln),
		pending:  map[string]pendingRequest{},
	}
	s.base = &url.URL{Scheme: "http", Host: urlHost(cfg.Address, ln.Addr().(*net.TCPAddr).Port), Path: "/"}
	if tlsConfig != nil {
		s.base.Scheme = "https"
	}
	s.lib, err = crstreaming.NewServer(crstreaming.Config{
		Addr:                            ln.Addr().String(),
		BaseURL:                         s.base,
		StreamIdleTimeout:               cfg.IdleTimeout,
		StreamCreationTimeout:           cfg.StreamCreationTimeout,
		SupportedRemoteCommandProtocols: remotecommand.SupportedStreamingProtocols,
		SupportedPortForwardProtocols:   portforward.SupportedProtocols,
		TLSConfig:                       tlsConfig,
	}, s.runtime)
	if err != nil {
		ln.Close()
		return nil, err
	}
	var served net.Listener = s.listener
	if tlsConfig != nil {
		served = tls.NewListener(s.listener, tlsConfig)
	}
	s.listener.served = served
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       connContext,
		// No HTTP/2: it cannot carry the upgrades.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	return s, nil
}

// urlHost is the host:port URLs name for the configured address and actual port.
func urlHost(address string, port int) string {
	host := address
	if ip := net.ParseIP(address); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// URL is the server's base URL (http[s]://host:port/).
func (s *Server) URL() string { return s.base.String() }

// Serve serves until Shutdown; it returns nil then, else the error that stopped it.
func (s *Server) Serve() error {
	err := s.http.Serve(s.listener.served)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server: the listener closes, every session's connection is cut
// (their exec processes are killed), and it waits for the sessions' handlers to end
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Close()
	s.listener.closeAll()
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("streaming sessions still ending: %w", ctx.Err())
	}
	return err
}

// GetExec returns the URL for an exec session (validated by the library).
func (s *Server) GetExec(req *criapi.ExecRequest) (*criapi.ExecResponse, error) {
	resp, err := s.lib.GetExec(req)
	if err != nil {
		return nil, err
	}
	s.remember(resp.Url, "exec", req)
	return resp, nil
}

// GetAttach returns the URL for an attach session (validated by the library).
func (s *Server) GetAttach(req *criapi.AttachRequest) (*criapi.AttachResponse, error) {
	resp, err := s.lib.GetAttach(req)
	if err != nil {
		return nil, err
	}
	s.remember(resp.Url, "attach", req)
	return resp, nil
}

// GetPortForward returns the URL for a port-forward session.
func (s *Server) GetPortForward(req *criapi.PortForwardRequest) (*criapi.PortForwardResponse, error) {
	resp, err := s.lib.GetPortForward(req)
	if err != nil {
		return nil, err
	}
	s.remember(resp.Url, "portforward", req)
	return resp, nil
}

func (s *Server) remember(rawURL, kind string, req any) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, p := range s.pending {
		if now.After(p.expires) {
			delete(s.pending, t)
		}
	}
	s.pending[path.Base(u.Path)] = pendingRequest{kind: kind, req: req, expires: now.Add(tokenTTL)}
}

// take removes and returns the pending request of a URL path /<kind>/<token>.
func (s *Server) take(urlPath string) (pendingRequest, bool) {
	kind, token, ok := strings.Cut(strings.TrimPrefix(urlPath, "/"), "/")
	if !ok || token == "" || strings.Contains(token, "/") {
		return pendingRequest{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[token]
	if !ok || p.kind != kind {
		return pendingRequest{}, false
	}
	delete(s.pending, token)
	if time.Now().After(p.expires) {
		return pendingRequest{}, false
	}
	return p, true
}

type requestKey struct{}

// requestOf is the CRI request a session's context carries.
func requestOf(ctx context.Context) any { return ctx.Value(requestKey{}) }

// ServeHTTP takes the URL's token, then serves the session: WebSocket protocols the
// library lacks here, everything else by the library (which consumes its own token).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	p, ok := s.take(r.URL.Path)
	if !ok {
		klog.V(2).InfoS("Streaming request with an unknown, used or expired token", "path", r.URL.Path, "remote", r.RemoteAddr)
		http.NotFound(w, r)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, p.req))
	klog.V(4).InfoS("Streaming session", "kind", p.kind, "remote", r.RemoteAddr,
		"upgrade", r.Header.Get("Upgrade"), "protocols", r.Header.Values(wsstream.WebSocketProtocolHeader))
	switch {
	case p.kind != "portforward" && wsstream.IsWebSocketRequestWithStreamCloseProtocol(r):
		s.serveRemoteCommandV5(w, r, p)
	case p.kind == "portforward" && wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		s.serveTunneledPortForward(w, r)
	default:
		s.lib.ServeHTTP(w, r)
	}
}
