package streaming

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/netns"
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

// inNetNS runs fn inside the network namespace at nsPath (see netns.Do).
func inNetNS[T any](nsPath string, fn func() (T, error)) (T, error) {
	var v T
	err := netns.Do(nsPath, func() error {
		var err error
		v, err = fn()
		return err
	})
	return v, err
}
