package turnserver

import (
	"net"
	"sync"
)

// connTracker is the TURN over TLS port's TCP listener: it closes the
// connections it accepted when it is closed, which pion's server does not
// do, so that Close ends every client's read loop.
type connTracker struct {
	net.Listener

	mu     sync.Mutex // guards the following
	conns  map[*trackedConn]struct{}
	closed bool
}

func newConnTracker(l net.Listener) *connTracker {
	return &connTracker{Listener: l, conns: map[*trackedConn]struct{}{}}
}

func (l *connTracker) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	return tc, nil
}

func (l *connTracker) Close() error {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[*trackedConn]struct{}{}
	l.mu.Unlock()
	err := l.Listener.Close()
	for c := range conns {
		c.Conn.Close()
	}
	return err
}

// trackedConn leaves its tracker's set when it is closed.
type trackedConn struct {
	net.Conn
	l *connTracker
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
