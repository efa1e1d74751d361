package streaming

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
)

// Sessions are hijacked HTTP connections: net/http no longer watches them, so a
// request's context would outlive a client that went away. trackingListener's
// connections end their context when they are closed or their peer is gone, so a
// session's exec process is killed as soon as its client disconnects; and Shutdown
// can cut every session.
type trackingListener struct {
	net.Listener
	served net.Listener // what http.Server serves: this one, or TLS over it

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newTrackingListener(l net.Listener) *trackingListener {
	return &trackingListener{Listener: l, conns: map[*trackedConn]struct{}{}}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, gone: make(chan struct{}), owner: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// closeAll cuts every open connection.
func (l *trackingListener) closeAll() {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func (l *trackingListener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn closes gone once the connection is closed or a read finds the peer gone.
type trackedConn struct {
	net.Conn
	owner *trackingListener
	once  sync.Once
	gone  chan struct{}
}

func (c *trackedConn) markGone() {
	c.once.Do(func() {
		close(c.gone)
		c.owner.forget(c)
	})
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	// A deadline is not the peer leaving: net/http and the protocols use them.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			c.markGone()
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.markGone()
	return err
}

// connContext gives each connection's requests a context that ends with the connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	for {
		if tc, ok := c.(*trackedConn); ok {
			ctx, cancel := context.WithCancel(ctx)
			go func() {
				<-tc.gone
				cancel()
			}()
			return ctx
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return ctx
		}
		c = u.NetConn()
	}
}
