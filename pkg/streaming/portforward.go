package streaming

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/sandbox"
)

const (
	dialTimeout = 5 * time.Second
	// halfCloseGrace is how long the pod may still answer after the client stopped
	// sending (or went away) before the forwarded connection is cut.
	halfCloseGrace = 10 * time.Second
)

// PortForward connects stream to a TCP port on the pod's loopback: the socket is made
// in the pod's network namespace (on the host for host-network pods). An error — the
// pod is gone, nothing listens — is what the library reports on the error stream.
func (r *Runtime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("invalid port %d", port)
	}
	sb, err := r.Sandboxes.Get(podSandboxID)
	if err != nil {
		return err
	}
	if st := sb.Status().State; st != sandbox.StateReady {
		return fmt.Errorf("pod sandbox %s is %s, not READY", sb.ID, st)
	}
	nsPath := ""
	if !sb.HostNetwork() {
		if sb.NetNSPath == "" {
			return fmt.Errorf("pod sandbox %s has no network namespace", sb.ID)
		}
		nsPath = sb.NetNSPath
	}
	conn, err := dialLoopback(nsPath, port)
	if err != nil {
		return fmt.Errorf("connecting to port %d in pod sandbox %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	klog.V(4).InfoS("Port forward connected", "podSandboxID", sb.ID, "port", port)
	pipe(ctx, stream, conn)
	klog.V(4).InfoS("Port forward ended", "podSandboxID", sb.ID, "port", port)
	return nil
}

// pipe copies between the client's stream and the pod's connection until the pod
// closes its side; once the client stopped sending, the pod gets halfCloseGrace to
// finish its answer.
func pipe(ctx context.Context, stream io.ReadWriteCloser, conn net.Conn) {
	fromClient := make(chan struct{})
	fromPod := make(chan struct{})
	go func() {
		defer close(fromClient)
		_, _ = io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	go func() {
		defer close(fromPod)
		_, _ = io.Copy(stream, conn)
	}()
	select {
	case <-fromPod:
	case <-ctx.Done():
	case <-fromClient:
		t := time.NewTimer(halfCloseGrace)
		defer t.Stop()
		select {
		case <-fromPod:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	conn.Close() // ends the copy from the pod if it still runs
}

// dialLoopback connects to port on the loopback of the network namespace at nsPath,
// or of the host for "": IPv4 first, then IPv6 (an application may listen on one
// family only).
func dialLoopback(nsPath string, port int32) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		p := strconv.Itoa(int(port))
		// Literal addresses: no parallel dials on other goroutines (and threads).
		c, err4 := d.Dial("tcp4", net.JoinHostPort("127.0.0.1", p))
		if err4 == nil {
			return c, nil
		}
		c, err6 := d.Dial("tcp6", net.JoinHostPort("::1", p))
		if err6 == nil {
			return c, nil
		}
		return nil, fmt.Errorf("IPv4: %w; IPv6: %w", err4, err6)
	}
	if nsPath == "" {
		return dial()
	}
	return inNetNS(nsPath, dial)
}

// inNetNS runs fn on an OS thread switched into the network namespace at nsPath.
// Sockets fn makes belong to that namespace and work from any thread afterwards. The
// thread is switched back; if that fails it is locked to its goroutine, which ends,
// so Go discards the thread instead of reusing it.
func inNetNS[T any](nsPath string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		fail := func(err error) {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
		}
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			fail(err)
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			fail(fmt.Errorf("opening network namespace: %w", err))
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			fail(fmt.Errorf("entering network namespace %s: %w", nsPath, err))
			return
		}
		v, err := fn()
		if rerr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); rerr == nil {
			runtime.UnlockOSThread()
		} else {
			klog.ErrorS(rerr, "Leaving a pod network namespace; discarding the thread", "netns", nsPath)
		}
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}
