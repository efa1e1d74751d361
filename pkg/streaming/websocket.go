package streaming

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// The remotecommand channels, numbered as their file descriptors (then error, resize).
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

// serveRemoteCommandV5 serves an exec or attach session over WebSocket
// v5.channel.k8s.io: the library's wsstream channels (which implement v5's stdin
// half-close), the session run by the Runtime, and the outcome written to the error
// channel as a status object, exactly as the library does for v4.
func (s *Server) serveRemoteCommandV5(w http.ResponseWriter, r *http.Request, p pendingRequest) {
	var stdin, stdout, stderr, tty bool
	switch req := p.req.(type) {
	case *criapi.ExecRequest:
		stdin, stdout, stderr, tty = req.GetStdin(), req.GetStdout(), req.GetStderr(), req.GetTty()
	case *criapi.AttachRequest:
		stdin, stdout, stderr, tty = req.GetStdin(), req.GetStdout(), req.GetStderr(), req.GetTty()
	default:
		http.NotFound(w, r)
		return
	}
	channel := func(use bool, t wsstream.ChannelType) wsstream.ChannelType {
		if use {
			return t
		}
		return wsstream.IgnoreChannel
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: []wsstream.ChannelType{
			chanStdin:  channel(stdin, wsstream.ReadChannel),
			chanStdout: channel(stdout, wsstream.WriteChannel),
			chanStderr: channel(stderr, wsstream.WriteChannel),
			chanError:  wsstream.WriteChannel,
			chanResize: channel(tty, wsstream.ReadChannel),
		}},
	})
	conn.SetIdleTimeout(s.cfg.IdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		klog.V(2).InfoS("WebSocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	defer conn.Close()
	// An empty message on the first writable channel tells the client it is connected.
	switch {
	case stdout:
		_, _ = streams[chanStdout].Write(nil)
	case stderr:
		_, _ = streams[chanStderr].Write(nil)
	default:
		_, _ = streams[chanError].Write(nil)
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var in io.Reader
	var out, errOut io.WriteCloser
	if stdin {
		in = streams[chanStdin]
	}
	if stdout {
		out = streams[chanStdout]
	}
	if stderr {
		errOut = streams[chanStderr]
	}
	var resize chan remotecommand.TerminalSize
	if tty {
		resize = make(chan remotecommand.TerminalSize)
		go decodeResizes(ctx, streams[chanResize], resize)
	}
	switch req := p.req.(type) {
	case *criapi.ExecRequest:
		err = s.runtime.Exec(ctx, req.GetContainerId(), req.GetCmd(), in, out, errOut, tty, resize)
		if err != nil && !isExitError(err) {
			err = fmt.Errorf("error executing command in container: %w", err)
		}
	case *criapi.AttachRequest:
		err = s.runtime.Attach(ctx, req.GetContainerId(), in, out, errOut, tty, resize)
		if err != nil {
			err = fmt.Errorf("error attaching to container: %w", err)
		}
	}
	if err != nil {
		klog.V(2).InfoS("Streaming session ended with an error", "kind", p.kind, "err", err)
	}
	if b, merr := json.Marshal(sessionStatus(err)); merr == nil {
		_, _ = streams[chanError].Write(b)
	}
}

func isExitError(err error) bool {
	var ee utilexec.ExitError
	return errors.As(err, &ee) && ee.Exited()
}

// decodeResizes reads the client's JSON terminal sizes until the channel ends.
func decodeResizes(ctx context.Context, r io.Reader, out chan<- remotecommand.TerminalSize) {
	defer close(out)
	dec := json.NewDecoder(r)
	for {
		var sz remotecommand.TerminalSize
		if err := dec.Decode(&sz); err != nil {
			return
		}
		select {
		case out <- sz:
		case <-ctx.Done():
			return
		}
	}
}

// status is the error channel's object (a metav1.Status, as remotecommand v4+ sends).
type status struct {
	Metadata struct{}       `json:"metadata"`
	Status   string         `json:"status"`
	Message  string         `json:"message,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	Details  *statusDetails `json:"details,omitempty"`
	Code     int32          `json:"code,omitempty"`
}

type statusDetails struct {
	Causes []statusCause `json:"causes,omitempty"`
}

type statusCause struct {
	Type    string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

func sessionStatus(err error) status {
	var ee utilexec.ExitError
	switch {
	case err == nil:
		return status{Status: "Success"}
	case errors.As(err, &ee) && ee.Exited():
		return status{
			Status:  "Failure",
			Reason:  remotecommand.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", err),
			Details: &statusDetails{Causes: []statusCause{{Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(ee.ExitStatus())}}},
		}
	default:
		return status{
			Status:  "Failure",
			Reason:  "InternalError",
			Message: fmt.Sprintf("Internal error occurred: %v", err),
			Code:    http.StatusInternalServerError,
		}
	}
}

// serveTunneledPortForward serves port forwarding tunneled as SPDY inside a WebSocket
// (SPDY/3.1+portforward.k8s.io, what client-go's port forwarder offers first): the
// library's SPDY port-forward handler serves the session, given the WebSocket as the
// connection it upgrades.
func (s *Server) serveTunneledPortForward(w http.ResponseWriter, r *http.Request) {
	var protocol string
	for _, p := range websocket.Subprotocols(r) {
		if p == portforward.WebsocketsSPDYTunnelingPortForwardV1 {
			protocol = p
			break
		}
	}
	if protocol == "" {
		http.Error(w, fmt.Sprintf("unsupported WebSocket tunneling protocols %q; supported: %s",
			websocket.Subprotocols(r), portforward.WebsocketsSPDYTunnelingPortForwardV1), http.StatusForbidden)
		return
	}
	inner := r.Clone(r.Context())
	for _, h := range []string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions"} {
		inner.Header.Del(h)
	}
	inner.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	inner.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	inner.Header.Set(httpstream.HeaderProtocolVersion, strings.TrimPrefix(protocol, portforward.WebsocketsSPDYTunnelingPrefix))
	s.lib.ServeHTTP(&tunnelResponse{w: w, r: r, protocol: protocol, header: http.Header{}}, inner)
}

// tunnelResponse is the response the library upgrades to SPDY: its 101 becomes the
// WebSocket handshake and its hijacked connection is the WebSocket. Errors before
// the upgrade reach the client as plain HTTP responses.
type tunnelResponse struct {
	w        http.ResponseWriter
	r        *http.Request
	protocol string
	header   http.Header
	wrote    bool
	upgraded bool
}

func (t *tunnelResponse) Header() http.Header { return t.header }

func (t *tunnelResponse) WriteHeader(code int) {
	if t.wrote {
		return
	}
	t.wrote = true
	if code == http.StatusSwitchingProtocols {
		t.upgraded = true
		return
	}
	for k, v := range t.header {
		t.w.Header()[k] = v
	}
	t.w.WriteHeader(code)
}

func (t *tunnelResponse) Write(b []byte) (int, error) {
	if !t.wrote {
		t.WriteHeader(http.StatusOK)
	}
	if t.upgraded {
		return 0, http.ErrHijacked
	}
	return t.w.Write(b)
}

func (t *tunnelResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	up := websocket.Upgrader{
		Subprotocols: []string{t.protocol},
		// Not a browser API: the single-use token in the URL is the credential.
		CheckOrigin:      func(*http.Request) bool { return true },
		HandshakeTimeout: 30 * time.Second,
	}
	ws, err := up.Upgrade(t.w, t.r, nil)
	if err != nil {
		return nil, nil, err
	}
	c := &wsConn{ws: ws}
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// wsConn is a WebSocket carrying a byte stream in binary messages, as a net.Conn.
type wsConn struct {
	ws *websocket.Conn

	rmu sync.Mutex
	r   io.Reader // the message being read

	wmu sync.Mutex
}

func (c *wsConn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
					return 0, io.EOF
				}
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(b)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *wsConn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr  { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.ws.SetWriteDeadline(t)
}
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
