package streaming

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	clientexec "k8s.io/client-go/util/exec"
	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crremotecommand "k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/container"
)

// fakeContainers runs a few pretend commands.
type fakeContainers struct {
	mu       sync.Mutex
	started  chan struct{} // closed when a "block" exec started
	canceled chan struct{} // closed when its context ended
}

func newFake() *fakeContainers {
	return &fakeContainers{started: make(chan struct{}), canceled: make(chan struct{})}
}

func (f *fakeContainers) Exec(ctx context.Context, id string, o container.ExecOptions) (int32, error) {
	if id != "ctr" {
		return 0, errors.New("no such container")
	}
	switch o.Cmd[0] {
	case "echo":
		fmt.Fprintln(o.Stdout, strings.Join(o.Cmd[1:], " "))
		if o.Stderr != nil {
			fmt.Fprintln(o.Stderr, "to stderr")
		}
		return 0, nil
	case "exit":
		code, _ := strconv.Atoi(o.Cmd[1])
		return int32(code), nil
	case "cat":
		if o.Stdin == nil {
			return 1, nil
		}
		_, err := io.Copy(o.Stdout, o.Stdin)
		return 0, err
	case "size":
		if sz, ok := <-o.Resize; ok {
			fmt.Fprintf(o.Stdout, "%dx%d\n", sz[0], sz[1])
		}
		return 0, nil
	case "block":
		close(f.started)
		<-ctx.Done()
		close(f.canceled)
		return 0, ctx.Err()
	}
	return 127, nil
}

func (f *fakeContainers) Attach(ctx context.Context, id string, o container.AttachOptions) error {
	if o.Stdin != nil {
		_, err := io.Copy(o.Stdout, o.Stdin)
		return err
	}
	fmt.Fprintln(o.Stdout, "attached")
	return nil
}

func startServer(t *testing.T, f *fakeContainers) *Server {
	t.Helper()
	s, err := New(Config{Address: "127.0.0.1"}, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

type executor func(rawURL string) (remotecommand.Executor, error)

var executors = map[string]executor{
	"spdy": func(rawURL string) (remotecommand.Executor, error) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, err
		}
		return remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	},
	"websocket-v5": func(rawURL string) (remotecommand.Executor, error) {
		return remotecommand.NewWebSocketExecutor(&rest.Config{}, "GET", rawURL)
	},
	"websocket-v4": func(rawURL string) (remotecommand.Executor, error) {
		return remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, "GET", rawURL, "v4.channel.k8s.io")
	},
}

func run(t *testing.T, ex executor, rawURL string, o remotecommand.StreamOptions) error {
	t.Helper()
	e, err := ex(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.StreamWithContext(ctx, o)
}

type sizes chan remotecommand.TerminalSize

func (q sizes) Next() *remotecommand.TerminalSize {
	sz, ok := <-q
	if !ok {
		return nil
	}
	return &sz
}

func TestExecAndAttachProtocols(t *testing.T) {
	s := startServer(t, newFake())
	for name, ex := range executors {
		t.Run(name, func(t *testing.T) {
			var out, errOut strings.Builder
			resp, err := s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "hi", "there"}, Stdout: true, Stderr: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
				t.Errorf("echo: %v", err)
			}
			if out.String() != "hi there\n" || errOut.String() != "to stderr\n" {
				t.Errorf("echo: %q %q", out.String(), errOut.String())
			}

			resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"exit", "42"}, Stdout: true})
			err = run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard})
			var ee clientexec.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() != 42 {
				t.Errorf("exit 42: %v", err)
			}
			// Single use.
			if err := run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
				t.Errorf("a used URL served again")
			}

			resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "missing", Cmd: []string{"echo"}, Stdout: true})
			if err := run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard}); err == nil || !strings.Contains(err.Error(), "no such container") {
				t.Errorf("exec in a missing container: %v", err)
			}

			q := make(sizes, 1)
			q <- remotecommand.TerminalSize{Width: 80, Height: 25}
			close(q)
			out.Reset()
			resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"size"}, Stdout: true, Tty: true})
			if err := run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: q}); err != nil || out.String() != "80x25\n" {
				t.Errorf("resize: %q %v", out.String(), err)
			}

			// Stdin not requested: the command gets none.
			resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdout: true})
			err = run(t, ex, resp.Url, remotecommand.StreamOptions{Stdout: io.Discard})
			if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
				t.Errorf("cat without stdin: %v", err)
			}

			if name == "websocket-v4" {
				return // no stdin half-close in v4
			}
			out.Reset()
			resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"cat"}, Stdin: true, Stdout: true})
			if err := run(t, ex, resp.Url, remotecommand.StreamOptions{Stdin: strings.NewReader("abc\ndef"), Stdout: &out}); err != nil || out.String() != "abc\ndef" {
				t.Errorf("cat: %q %v", out.String(), err)
			}
			out.Reset()
			aresp, err := s.GetAttach(&criapi.AttachRequest{ContainerId: "ctr", Stdin: true, Stdout: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := run(t, ex, aresp.Url, remotecommand.StreamOptions{Stdin: strings.NewReader("typed"), Stdout: &out}); err != nil || out.String() != "typed" {
				t.Errorf("attach: %q %v", out.String(), err)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	s := startServer(t, newFake())
	resp, err := s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(resp.Url)
	token := u.Path[strings.LastIndex(u.Path, "/")+1:]
	get := func(path string) int {
		r, err := http.Get(s.URL() + strings.TrimPrefix(path, "/"))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// Another kind's path does not take the token, a made-up token is unknown.
	if c := get("/attach/" + token); c != http.StatusNotFound {
		t.Errorf("exec token under /attach: %d", c)
	}
	if c := get("/exec/madeup00"); c != http.StatusNotFound {
		t.Errorf("made-up token: %d", c)
	}
	// A plain GET uses the token (the library refuses it: no upgrade)...
	if c := get(u.Path); c == http.StatusNotFound || c < 400 {
		t.Errorf("first use: %d", c)
	}
	// ...and it is gone.
	if c := get(u.Path); c != http.StatusNotFound {
		t.Errorf("second use: %d", c)
	}
	// Expired tokens are refused.
	resp, _ = s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo"}, Stdout: true})
	u, _ = url.Parse(resp.Url)
	s.mu.Lock()
	for k, p := range s.pending {
		p.expires = time.Now().Add(-time.Second)
		s.pending[k] = p
	}
	s.mu.Unlock()
	if c := get(u.Path); c != http.StatusNotFound {
		t.Errorf("expired token: %d", c)
	}
	// The library validates requests.
	if _, err := s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"x"}, Stdout: true, Stderr: true, Tty: true}); err == nil {
		t.Errorf("tty with stderr accepted")
	}
}

func TestClientGoneAndShutdownEndSessions(t *testing.T) {
	for _, what := range []string{"client gone", "shutdown"} {
		t.Run(what, func(t *testing.T) {
			f := newFake()
			s, err := New(Config{Address: "127.0.0.1"}, f, nil)
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = s.Serve() }()
			defer s.Shutdown(context.Background())
			resp, _ := s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"block"}, Stdout: true})
			e, err := executors["spdy"](resp.Url)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard}) }()
			select {
			case <-f.started:
			case <-time.After(10 * time.Second):
				t.Fatal("exec did not start")
			}
			if what == "shutdown" {
				sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer scancel()
				if err := s.Shutdown(sctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			} else {
				cancel()
			}
			select {
			case <-f.canceled:
			case <-time.After(10 * time.Second):
				t.Fatal("the session's context did not end")
			}
			<-done
		})
	}
}

func TestURLAndDefaults(t *testing.T) {
	s, err := New(Config{Address: "0.0.0.0"}, newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || strings.HasSuffix(s.URL(), ":0/") {
		t.Errorf("URL = %s", s.URL())
	}
	d := config.Default().Streaming
	if d.StreamCreationTimeout.D() != crremotecommand.DefaultStreamCreationTimeout {
		t.Errorf("config default stream_creation_timeout %s differs from the library's %s", d.StreamCreationTimeout.D(), crremotecommand.DefaultStreamCreationTimeout)
	}
	if d.IdleTimeout.D() != 4*time.Hour || d.Address != "127.0.0.1" || d.Port != 0 {
		t.Errorf("config defaults: %+v", d)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keelson-streaming"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	_ = os.WriteFile(certFile, certPEM, 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	if _, err := New(Config{Address: "127.0.0.1", TLSCertFile: certFile, TLSKeyFile: filepath.Join(dir, "missing")}, newFake(), nil); err == nil {
		t.Errorf("a missing key file was accepted")
	}
	s, err := New(Config{Address: "127.0.0.1", TLSCertFile: certFile, TLSKeyFile: keyFile}, newFake(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	defer s.Shutdown(context.Background())
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL = %s", s.URL())
	}
	cfg := &rest.Config{TLSClientConfig: rest.TLSClientConfig{CAData: certPEM}}
	for _, ws := range []bool{false, true} {
		resp, _ := s.GetExec(&criapi.ExecRequest{ContainerId: "ctr", Cmd: []string{"echo", "secure"}, Stdout: true})
		var e remotecommand.Executor
		if ws {
			e, err = remotecommand.NewWebSocketExecutor(cfg, "GET", resp.Url)
		} else {
			u, _ := url.Parse(resp.Url)
			e, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
		}
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = e.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out})
		cancel()
		if err != nil || out.String() != "secure\n" {
			t.Errorf("websocket=%v over TLS: %q %v", ws, out.String(), err)
		}
	}
}
