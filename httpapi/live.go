package httpapi

import (
	"context"
	"errors"
	"sync"

	"github.com/troupe-media/troupe/actors"
)

// liveSessions tracks what outlives a request: signaling sockets (whose
// handlers run as long as the socket) and WHIP/WHEP sessions (which a
// later DELETE ends), so that Close can end them all.
type liveSessions struct {
	mu     sync.Mutex // guards the following
	closed bool
	conns  map[*signalConn]struct{}
	whip   map[actors.ParticipantID]*whipSession
	// handlers counts the signaling handlers still running.
	handlers sync.WaitGroup
	// ctx is canceled by Close: it ends the WebSockets forwarded to
	// another node, which net/http's Shutdown does not wait for either.
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *liveSessions) init() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.conns = make(map[*signalConn]struct{})
	l.whip = make(map[actors.ParticipantID]*whipSession)
}

// addConn registers a signaling socket's handler; false once closed.
func (l *liveSessions) addConn(c *signalConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	l.handlers.Add(1)
	return true
}

func (l *liveSessions) removeConn(c *signalConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.handlers.Done()
}

func (l *liveSessions) addWHIP(w *whipSession) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.whip[w.p.ID] = w
	return true
}

func (l *liveSessions) getWHIP(id actors.ParticipantID) (*whipSession, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.whip[id]
	return w, ok
}

func (l *liveSessions) removeWHIP(id actors.ParticipantID) {
	l.mu.Lock()
	delete(l.whip, id)
	l.mu.Unlock()
}

// Close ends every signaling socket (close code 1001; the participants
// leave with reason server-shutdown), every WHIP and WHEP session and every
// WebSocket forwarded to another node, and refuses new ones. It waits for the signaling handlers to return, or for
// ctx. net/http's Server.Shutdown does not wait for WebSockets (they are
// hijacked connections): call Close after it, before stopping the actors.
func (s *Server) Close(ctx context.Context) error {
	l := &s.live
	l.mu.Lock()
	l.closed = true
	conns := make([]*signalConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	sessions := make([]*whipSession, 0, len(l.whip))
	for _, w := range l.whip {
		sessions = append(sessions, w)
	}
	l.whip = make(map[actors.ParticipantID]*whipSession)
	l.mu.Unlock()
	l.cancel()

	for _, c := range conns {
		c.shutdown()
	}
	var errs []error
	for _, w := range sessions {
		if err := w.p.Leave(ctx, actors.ReasonServerShutdown); err != nil {
			errs = append(errs, err)
		}
	}
	done := make(chan struct{})
	go func() {
		l.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	s.forwarder.CloseIdleConnections()
	return errors.Join(errs...)
}
