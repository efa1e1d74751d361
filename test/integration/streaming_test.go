package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	clientexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// A transport is one way clients speak to the streaming server.
type transport struct {
	name string
	// halfClose: the client can signal the end of stdin (v4 WebSocket cannot).
	halfClose bool
	executor  func(rawURL string) (remotecommand.Executor, error)
}

var transports = []transport{
	{"spdy", true, func(rawURL string) (remotecommand.Executor, error) {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, err
		}
		return remotecommand.NewSPDYExecutor(&rest.Config{}, "POST", u)
	}},
	// What kubectl and crictl offer first: v5.channel.k8s.io.
	{"websocket", true, func(rawURL string) (remotecommand.Executor, error) {
		return remotecommand.NewWebSocketExecutor(&rest.Config{}, "GET", rawURL)
	}},
	// The library's own WebSocket protocol.
	{"websocket-v4", false, func(rawURL string) (remotecommand.Executor, error) {
		return remotecommand.NewWebSocketExecutorForProtocols(&rest.Config{}, "GET", rawURL, "v4.channel.k8s.io")
	}},
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sizeQueue delivers terminal sizes to client-go; close it to stop.
type sizeQueue chan remotecommand.TerminalSize

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	sz, ok := <-q
	if !ok {
		return nil
	}
	return &sz
}

func execURL(t *testing.T, k *harness.Keelson, req *runtimeapi.ExecRequest) string {
	t.Helper()
	resp, err := k.Runtime.Exec(harness.Ctx(t), req)
	if err != nil {
		t.Fatalf("Exec %v: %v", req.Cmd, err)
	}
	return resp.Url
}

func attachURL(t *testing.T, k *harness.Keelson, req *runtimeapi.AttachRequest) string {
	t.Helper()
	resp, err := k.Runtime.Attach(harness.Ctx(t), req)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	return resp.Url
}

// stream runs one session to its end (bounded by timeout).
func stream(t *testing.T, tr transport, rawURL string, timeout time.Duration, o remotecommand.StreamOptions) error {
	t.Helper()
	ex, err := tr.executor(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ex.StreamWithContext(ctx, o)
}

func exitCode(err error) (int, bool) {
	var ee clientexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitStatus(), true
	}
	return 0, false
}

// waitFor polls cond for up to timeout.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStreamingExec(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "exec")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "100000"))

	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			// Output on both streams, no tty.
			var out, errOut syncBuffer
			u := execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo hello; echo oops >&2"}, Stdout: true, Stderr: true})
			if err := stream(t, tr, u, 30*time.Second, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut}); err != nil {
				t.Errorf("exec: %v", err)
			}
			if out.String() != "hello\n" || errOut.String() != "oops\n" {
				t.Errorf("exec output = %q, %q", out.String(), errOut.String())
			}

			// A non-zero exit code comes back as an exit error carrying it.
			u = execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id[:12], Cmd: []string{"sh", "-c", "exit 3"}, Stdout: true, Stderr: true})
			err := stream(t, tr, u, 30*time.Second, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard})
			if code, ok := exitCode(err); !ok || code != 3 {
				t.Errorf("exit 3: err = %v (code %d, exit error %v)", err, code, ok)
			}

			// The URL is single-use.
			if err := stream(t, tr, u, 10*time.Second, remotecommand.StreamOptions{Stdout: io.Discard, Stderr: io.Discard}); err == nil {
				t.Errorf("a used URL served a second session")
			}

			// A terminal: its size follows the client's.
			sizes := make(sizeQueue, 1)
			sizes <- remotecommand.TerminalSize{Width: 123, Height: 45}
			defer close(sizes)
			var tty syncBuffer
			u = execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id, Tty: true, Stdout: true, Cmd: []string{"sh", "-c",
				`for i in $(seq 50); do s=$(stty size); [ "$s" = "45 123" ] && break; sleep 0.1; done; echo "size=$s"; [ -t 1 ] && echo tty`}})
			if err := stream(t, tr, u, 30*time.Second, remotecommand.StreamOptions{Stdout: &tty, Tty: true, TerminalSizeQueue: sizes}); err != nil {
				t.Errorf("tty exec: %v", err)
			}
			if got := tty.String(); !strings.Contains(got, "size=45 123\r\n") || !strings.Contains(got, "tty\r\n") {
				t.Errorf("tty exec output = %q", got)
			}

			if !tr.halfClose {
				return
			}
			// Stdin round trip: cat ends when the client's input does.
			in := "line one\nline two\n" + strings.Repeat("x", 100000) + "\n"
			var catOut syncBuffer
			u = execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"cat"}, Stdin: true, Stdout: true, Stderr: true})
			if err := stream(t, tr, u, 30*time.Second, remotecommand.StreamOptions{Stdin: strings.NewReader(in), Stdout: &catOut, Stderr: io.Discard}); err != nil {
				t.Errorf("cat: %v", err)
			}
			if catOut.String() != in {
				t.Errorf("cat returned %d bytes, want %d: %q", len(catOut.String()), len(in), trunc([]byte(catOut.String())))
			}
		})
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// psHas reports whether a process with marker in its command line runs in the container.
func psHas(t *testing.T, k *harness.Keelson, id, marker string) bool {
	t.Helper()
	r := execSync(t, k, id, 10, "ps", "-o", "pid,args")
	return strings.Contains(string(r.Stdout), marker)
}

func TestExecClientDisconnectKillsProcess(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "execgone")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "100000"))

	for i, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			marker := fmt.Sprintf("sleep 7%03d", i)
			for _, tty := range []bool{false, true} {
				u := execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id, Cmd: strings.Fields(marker), Stdin: true, Stdout: true, Stderr: !tty, Tty: tty})
				ex, err := tr.executor(u)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				stdin, stdinW := io.Pipe()
				o := remotecommand.StreamOptions{Stdin: stdin, Stdout: io.Discard, Tty: tty}
				if !tty {
					o.Stderr = io.Discard
				}
				go func() { done <- ex.StreamWithContext(ctx, o) }()
				if !waitFor(15*time.Second, func() bool { return psHas(t, k, id, marker) }) {
					t.Fatalf("tty=%v: exec process %q never showed up", tty, marker)
				}
				cancel() // the client goes away mid-stream
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Errorf("tty=%v: client did not return after cancel", tty)
				}
				stdinW.Close()
				if !waitFor(15*time.Second, func() bool { return !psHas(t, k, id, marker) }) {
					t.Errorf("tty=%v: exec process %q still runs after its client went away", tty, marker)
				}
			}
		})
	}
	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

func TestAttachStreaming(t *testing.T) {
	k := containerTestKeelson(t)
	p := newPod(t, k, "attach")

	// A container with stdin: attach writes to its stdin and reads its output.
	catCfg := ctrConfig("cat", images.Busybox, "cat")
	catCfg.Stdin = true
	catID := p.run(t, catCfg)
	// A container without tty or stdin logs through keelson-logger: attach follows its log.
	logCfg := ctrConfig("ticker", images.Busybox, "sh", "-c", "i=0; while :; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.1; done")
	logID := p.run(t, logCfg)

	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			// stdin → cat → stdout, across a live session.
			var out syncBuffer
			stdin, stdinW := io.Pipe()
			u := attachURL(t, k, &runtimeapi.AttachRequest{ContainerId: catID, Stdin: true, Stdout: true, Stderr: true})
			ex, err := tr.executor(u)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: &out, Stderr: io.Discard})
			}()
			line := "hello over " + tr.name
			go func() {
				// Repeat until seen: the session may not be connected for the first write.
				for i := 0; i < 50 && !strings.Contains(out.String(), line); i++ {
					fmt.Fprintln(stdinW, line)
					time.Sleep(200 * time.Millisecond)
				}
			}()
			if !waitFor(15*time.Second, func() bool { return strings.Contains(out.String(), line+"\n") }) {
				t.Errorf("attached cat did not echo %q; got %q", line, out.String())
			}
			cancel()
			stdin.Close() // unblocks the writer
			<-done
			if st := ctrStatus(t, k, catID); st.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
				t.Errorf("cat container after a detach (no stdin_once): %v", st.State)
			}

			// The logging container: stdout and stderr records arrive on their streams.
			var logOut, logErr syncBuffer
			u = attachURL(t, k, &runtimeapi.AttachRequest{ContainerId: logID, Stdout: true, Stderr: true})
			ex, err = tr.executor(u)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel = context.WithCancel(context.Background())
			go func() {
				done <- ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &logOut, Stderr: &logErr})
			}()
			if !waitFor(15*time.Second, func() bool {
				return strings.Count(logOut.String(), "tick") >= 3 && strings.Count(logErr.String(), "tock") >= 3
			}) {
				t.Errorf("attach to the logging container: stdout %q stderr %q", logOut.String(), logErr.String())
			}
			cancel()
			<-done
			if strings.Contains(logOut.String(), "tock") || strings.Contains(logErr.String(), "tick") {
				t.Errorf("streams mixed: stdout %q stderr %q", logOut.String(), logErr.String())
			}
		})
	}

	// stdin_once: the container's stdin closes when the first attach ends; cat exits.
	onceCfg := ctrConfig("once", images.Busybox, "sh", "-c", "cat; echo cat-done")
	onceCfg.Stdin, onceCfg.StdinOnce = true, true
	onceID := p.run(t, onceCfg)
	var out syncBuffer
	u := attachURL(t, k, &runtimeapi.AttachRequest{ContainerId: onceID, Stdin: true, Stdout: true, Stderr: true})
	err := stream(t, transports[0], u, 30*time.Second, remotecommand.StreamOptions{Stdin: strings.NewReader("only once\n"), Stdout: &out, Stderr: io.Discard})
	if err != nil {
		t.Errorf("stdin_once attach: %v", err)
	}
	if st := waitExited(t, k, onceID, 15*time.Second); st.ExitCode != 0 {
		t.Errorf("stdin_once container exit = %+v", st)
	}
	if got := out.String(); !strings.Contains(got, "only once\n") {
		t.Errorf("stdin_once attach output = %q", got)
	}
	waitLog(t, p.logPath(onceCfg), "stdout:only once", "stdout:cat-done")

	// A tty container: attach resizes its terminal.
	ttyCfg := ctrConfig("tty", images.Busybox, "sh")
	ttyCfg.Stdin, ttyCfg.Tty = true, true
	ttyID := p.run(t, ttyCfg)
	var ttyOut syncBuffer
	stdin, stdinW := io.Pipe()
	sizes := make(sizeQueue, 1)
	sizes <- remotecommand.TerminalSize{Width: 111, Height: 33}
	ex, err := transports[1].executor(attachURL(t, k, &runtimeapi.AttachRequest{ContainerId: ttyID, Stdin: true, Stdout: true, Tty: true}))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdin: stdin, Stdout: &ttyOut, Tty: true, TerminalSizeQueue: sizes})
	}()
	go func() {
		for i := 0; i < 50 && !strings.Contains(ttyOut.String(), "rows=33 cols=111"); i++ {
			fmt.Fprintln(stdinW, `echo "rows=$(stty size | cut -d' ' -f1) cols=$(stty size | cut -d' ' -f2)"`)
			time.Sleep(300 * time.Millisecond)
		}
	}()
	if !waitFor(20*time.Second, func() bool { return strings.Contains(ttyOut.String(), "rows=33 cols=111") }) {
		t.Errorf("tty attach: the terminal was not resized: %q", ttyOut.String())
	}
	go fmt.Fprintln(stdinW, "exit 0")
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tty attach ended with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("tty attach did not end when the container exited")
	}
	close(sizes)
	stdin.Close()
	waitExited(t, k, ttyID, 15*time.Second)

	// Attach ends when a logging container exits, after its last output.
	byeCfg := ctrConfig("bye", images.Busybox, "sh", "-c", "sleep 2; echo bye; echo bye-err >&2")
	byeID := p.run(t, byeCfg)
	var byeOut, byeErr syncBuffer
	u = attachURL(t, k, &runtimeapi.AttachRequest{ContainerId: byeID, Stdout: true, Stderr: true})
	if err := stream(t, transports[0], u, 30*time.Second, remotecommand.StreamOptions{Stdout: &byeOut, Stderr: &byeErr}); err != nil {
		t.Errorf("attach to an exiting container: %v", err)
	}
	if byeOut.String() != "bye\n" || byeErr.String() != "bye-err\n" {
		t.Errorf("attach to an exiting container: stdout %q stderr %q", byeOut.String(), byeErr.String())
	}

	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}

// errorLog collects the errors client-go's port forwarder reports.
type errorLog struct{ syncBuffer }

func (e *errorLog) ctx(parent context.Context) context.Context {
	logger := funcr.New(func(prefix, args string) { fmt.Fprintln(e, prefix, args) }, funcr.Options{})
	return klog.NewContext(parent, logger)
}

// forward starts client-go's port forwarder for ports (local:remote, local 0 = any)
// and returns the local ports, in order.
func forward(t *testing.T, ctx context.Context, dialer httpstream.Dialer, ports ...string) ([]uint16, chan error) {
	t.Helper()
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{"127.0.0.1"}, ports, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port forward ended before it was ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("port forward not ready")
	}
	fps, err := pf.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	local := make([]uint16, len(fps))
	for i, fp := range fps {
		local[i] = fp.Local
	}
	return local, done
}

var pfDialers = []struct {
	name string
	new  func(u *url.URL) (httpstream.Dialer, error)
}{
	{"spdy", func(u *url.URL) (httpstream.Dialer, error) {
		rt, upgrader, err := spdy.RoundTripperFor(&rest.Config{})
		if err != nil {
			return nil, err
		}
		return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, "POST", u), nil
	}},
	// What kubectl offers first: SPDY tunneled through a WebSocket.
	{"websocket", func(u *url.URL) (httpstream.Dialer, error) {
		return portforward.NewSPDYOverWebsocketDialer(u, &rest.Config{})
	}},
}

func pfURL(t *testing.T, k *harness.Keelson, podID string, ports ...int32) *url.URL {
	t.Helper()
	resp, err := k.Runtime.PortForward(harness.Ctx(t), &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: ports})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func echoOnce(port uint16, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, msg); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestPortForward(t *testing.T) {
	k := startWithRegistry(t, reg)
	mustPull(t, k, images.EchoServer)
	p := newPod(t, k, "pf")
	server := p.run(t, ctrConfig("server", images.EchoServer))
	// Wait until the server listens (seen from inside the pod).
	if !waitFor(20*time.Second, func() bool {
		r := execSync(t, k, server, 5, "wget", "-qO-", "http://127.0.0.1:8080/healthz")
		return r.ExitCode == 0
	}) {
		t.Fatal("echo server did not come up")
	}

	for _, d := range pfDialers {
		t.Run(d.name, func(t *testing.T) {
			dialer, err := d.new(pfURL(t, k, p.id, 8080, 9000))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			local, done := forward(t, ctx, dialer, "0:8080", "0:9000")

			// Two ports at once, 20 requests in parallel.
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for i := range 20 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%2 == 0 {
						got, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/req-%d", local[0], i))
						if err != nil || !strings.Contains(got, fmt.Sprintf("GET /req-%d", i)) || !strings.Contains(got, "host=pf") {
							errs <- fmt.Errorf("HTTP request %d: %q %v", i, got, err)
						}
						return
					}
					msg := fmt.Sprintf("echo %d %s", i, strings.Repeat("z", 2000*i))
					got, err := echoOnce(local[1], msg)
					if err != nil || got != msg+"\n" {
						errs <- fmt.Errorf("TCP echo %d: %d bytes back, %v", i, len(got), err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ForwardPorts: %v", err)
			}

			// Nothing listens on 9999: the error comes back on the error stream.
			var errLog errorLog
			ctx, cancel = context.WithCancel(errLog.ctx(context.Background()))
			defer cancel()
			dialer, err = d.new(pfURL(t, k, p.id, 9999))
			if err != nil {
				t.Fatal(err)
			}
			local, done = forward(t, ctx, dialer, "0:9999")
			reported := func() bool {
				return strings.Contains(errLog.String(), "An error occurred forwarding") && strings.Contains(errLog.String(), "connection refused")
			}
			// The server writes the error, then resets the streams; a client still
			// creating its data stream sees only the reset and may try again.
			for i := 0; i < 5 && !reported(); i++ {
				if got, err := echoOnce(local[0], "anyone?"); err == nil {
					t.Errorf("port 9999 answered %q", got)
				}
				waitFor(2*time.Second, reported)
			}
			if !reported() {
				t.Errorf("no error reported for port 9999; client log: %s", errLog.String())
			}
			cancel()
			<-done
		})
	}

	// A host-network pod forwards to the host's loopback.
	hostCfg := podConfig(k, "pfhost")
	hostCfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
	hostPod := runPod(t, k, hostCfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	hostPort := int32(l.Addr().(*net.TCPAddr).Port)
	dialer, err := pfDialers[0].new(pfURL(t, k, hostPod, hostPort))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	local, done := forward(t, ctx, dialer, fmt.Sprintf("0:%d", hostPort))
	if got, err := echoOnce(local[0], "host hello"); err != nil || got != "host hello\n" {
		t.Errorf("host-network port forward: %q %v", got, err)
	}
	cancel()
	<-done

	stopAndRemovePod(t, k, p.id)
	stopAndRemovePod(t, k, hostPod)
	k.CheckNoLeaks(t)
}

func TestStreamingBadInput(t *testing.T) {
	k := containerTestKeelson(t)
	ctx := harness.Ctx(t)
	p := newPod(t, k, "streambad")
	id := p.run(t, ctrConfig("main", images.Busybox, "sleep", "100000"))
	stopped := p.run(t, ctrConfig("stopped", images.Busybox, "true"))
	waitExited(t, k, stopped, 15*time.Second)

	execCode := func(r *runtimeapi.ExecRequest) codes.Code {
		_, err := k.Runtime.Exec(ctx, r)
		return status.Code(err)
	}
	attachCode := func(r *runtimeapi.AttachRequest) codes.Code {
		_, err := k.Runtime.Attach(ctx, r)
		return status.Code(err)
	}
	cmd := []string{"true"}
	for _, c := range []struct {
		name string
		got  codes.Code
		want codes.Code
	}{
		{"exec unknown container", execCode(&runtimeapi.ExecRequest{ContainerId: "nosuchcontainer", Cmd: cmd, Stdout: true}), codes.NotFound},
		{"exec stopped container", execCode(&runtimeapi.ExecRequest{ContainerId: stopped, Cmd: cmd, Stdout: true}), codes.FailedPrecondition},
		{"exec without stdout or stderr", execCode(&runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdin: true}), codes.InvalidArgument},
		{"exec without a command", execCode(&runtimeapi.ExecRequest{ContainerId: id, Stdout: true}), codes.InvalidArgument},
		{"exec tty with stderr", execCode(&runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdout: true, Stderr: true, Tty: true}), codes.InvalidArgument},
		{"attach unknown container", attachCode(&runtimeapi.AttachRequest{ContainerId: "nosuchcontainer", Stdout: true}), codes.NotFound},
		{"attach stopped container", attachCode(&runtimeapi.AttachRequest{ContainerId: stopped, Stdout: true}), codes.FailedPrecondition},
		{"attach without stdout or stderr", attachCode(&runtimeapi.AttachRequest{ContainerId: id, Stdin: true}), codes.InvalidArgument},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if _, err := k.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "nosuchpod", Port: []int32{80}}); status.Code(err) != codes.NotFound {
		t.Errorf("port forward to an unknown pod: %v", err)
	}

	// A URL whose token was never issued, or was already used, serves nothing.
	u := execURL(t, k, &runtimeapi.ExecRequest{ContainerId: id, Cmd: cmd, Stdout: true})
	bogus := u[:strings.LastIndex(u, "/")+1] + "nosuchtk"
	for _, tr := range transports {
		if err := stream(t, tr, bogus, 10*time.Second, remotecommand.StreamOptions{Stdout: io.Discard}); err == nil {
			t.Errorf("%s: a made-up token served a session", tr.name)
		}
	}
	if resp, err := http.Get(bogus); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a made-up token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	stopAndRemovePod(t, k, p.id)
	k.CheckNoLeaks(t)
}
