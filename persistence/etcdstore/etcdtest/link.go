package etcdtest

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Link is a TCP relay between one client of an etcd and the etcd, that a
// test cuts, as a network partition between a node and etcd (or etcd gone
// for a while) would look from that node, and mends. The client dials
// URL; the others dial etcd directly and are not cut.
type Link struct {
	// URL is the link's client URL, given to the client in place of etcd's.
	URL string

	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and the pipes

	mu    sync.Mutex // guards the following
	cut   bool
	conns map[net.Conn]struct{}
}

// NewLink starts a link to the etcd at endpoint (a client URL, as Start
// returns); it is closed, and its connections with it, when the test ends.
func NewLink(tb testing.TB, endpoint string) *Link {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	l := &Link{
		URL:    "http://" + ln.Addr().String(),
		ln:     ln,
		target: strings.TrimPrefix(endpoint, "http://"),
		conns:  map[net.Conn]struct{}{},
	}
	l.wg.Add(1)
	go l.accept()
	tb.Cleanup(func() {
		ln.Close()
		l.Cut(true)
		l.wg.Wait()
	})
	return l
}

// Cut drops every relayed connection and refuses new ones (true), or lets
// them through again (false).
func (l *Link) Cut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = cut
	if cut {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			in.Close()
			continue
		}
		if !l.track(in, out) {
			in.Close()
			out.Close()
			continue
		}
		l.wg.Add(2)
		go l.pipe(out, in)
		go l.pipe(in, out)
	}
}

// track adds the two ends of a relayed connection, unless the link is cut.
func (l *Link) track(in, out net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return false
	}
	l.conns[in], l.conns[out] = struct{}{}, struct{}{}
	return true
}

// pipe copies src to dst until either ends, then closes both, so that the
// other direction ends too.
func (l *Link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	l.mu.Lock()
	delete(l.conns, dst)
	delete(l.conns, src)
	l.mu.Unlock()
}
