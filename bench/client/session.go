package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// Defaults of Reconnect.
const (
	DefaultMinBackoff  = 250 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultMaxAttempts = 20
	DefaultDeadline    = time.Minute
	DefaultPeerTimeout = 5 * time.Second
)

// Reconnect configures how a Session comes back after its connection is
// lost. The zero value takes the defaults.
type Reconnect struct {
	// URLs are more server base URLs (the other nodes of a cluster), tried
	// in turn after the one that failed.
	URLs []string
	// MinBackoff (250 ms) doubles after each failed attempt up to
	// MaxBackoff (5 s); each wait is jittered by ±50% so that the clients
	// of a lost node do not come back all at once. After a refusal with a
	// Retry-After the next attempt waits that, plus up to half again,
	// instead.
	MinBackoff, MaxBackoff time.Duration
	// MaxAttempts (20) and Deadline (1 min) bound the attempts after one
	// loss: the first reached ends the session with ErrGaveUp.
	MaxAttempts int
	Deadline    time.Duration
	// PeerTimeout (5 s) is how long the peer connection may stay
	// disconnected before it counts as lost; failed is lost at once.
	PeerTimeout time.Duration
	// OnConnect, if set, runs on every connection, the first included,
	// before the session reports it: publish the tracks there (a
	// TrackLocalStaticRTP can be published again on the new connection
	// and goes on being written to). Subscriptions need nothing: the
	// server offers the room's tracks on every join. An error ends that
	// connection and counts as a failed attempt.
	OnConnect func(ctx context.Context, c *Client) error
	// NewToken, if set, mints a fresh join token when the server refuses
	// the current one with 401 (it expired); without it a 401 is final.
	NewToken func(ctx context.Context) (string, error)
}

func (r *Reconnect) setDefaults() {
	if r.MinBackoff <= 0 {
		r.MinBackoff = DefaultMinBackoff
	}
	if r.MaxBackoff < r.MinBackoff {
		r.MaxBackoff = max(DefaultMaxBackoff, r.MinBackoff)
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.Deadline <= 0 {
		r.Deadline = DefaultDeadline
	}
	if r.PeerTimeout <= 0 {
		r.PeerTimeout = DefaultPeerTimeout
	}
}

// SessionStats is what a Session went through.
type SessionStats struct {
	// Reconnects is how many times it joined again after a loss.
	Reconnects int
	// Outage is the time without media, summed over the losses: from
	// the loss to the first packet received again (or, for a client that
	// had received nothing, to the new connection's OnConnect done).
	Outage time.Duration
}

// Session is a participant that joins again by itself, with a new peer
// connection, when its socket ends or its peer connection fails, unless it
// left on purpose or the server ended it for good (docs/signaling.md,
// "Reconnecting"). Each connection is a Client.
type Session struct {
	cfg  Config
	rc   Reconnect
	urls []string

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // the loop ended
	wg     sync.WaitGroup

	mu       sync.Mutex // guards the following
	cur      *Client
	urlIdx   int
	token    string
	stats    SessionStats
	lostAt   time.Time // zero while media flows
	received bool      // a track arrived on some connection
	err      error     // why the session ended
}

// Connect joins like Dial (cfg.URL first) and keeps the participant in the
// room until Close, reconnecting as rc says. cfg.OnTrack, if set, is
// called for the tracks of every connection.
func Connect(ctx context.Context, cfg Config, rc Reconnect) (*Session, error) {
	rc.setDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Session{cfg: cfg, rc: rc, urls: append([]string{cfg.URL}, rc.URLs...), token: cfg.Token, done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c, err := s.dial(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.cur = c
	s.wg.Add(1)
	go s.run(c)
	return s, nil
}

// Client is the current connection.
func (s *Session) Client() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Stats returns the reconnections so far and the time without media.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if !s.lostAt.IsZero() {
		st.Outage += time.Since(s.lostAt)
	}
	return st
}

// Done is closed when the session has ended: closed, ended for good
// (ErrFinal), or out of attempts (ErrGaveUp).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended, once Done is closed; nil after Close.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close leaves the room and stops reconnecting.
func (s *Session) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.Client().Close()
}

// dial joins once through the current URL with OnConnect run.
func (s *Session) dial(ctx context.Context) (*Client, error) {
	s.mu.Lock()
	cfg := s.cfg
	cfg.URL, cfg.Token = s.urls[s.urlIdx], s.token
	s.mu.Unlock()
	cfg.OnTrack = s.onTrack
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if s.rc.OnConnect != nil {
		if err := s.rc.OnConnect(ctx, c); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("client: on connect: %w", err)
		}
	}
	s.mu.Lock()
	if !s.lostAt.IsZero() && !s.received {
		s.endOutageLocked()
	}
	s.mu.Unlock()
	return c, nil
}

func (s *Session) onTrack(tr *webrtc.TrackRemote) {
	s.mu.Lock()
	s.received = true
	if !s.lostAt.IsZero() {
		s.endOutageLocked()
	}
	s.mu.Unlock()
	if s.cfg.OnTrack != nil {
		s.cfg.OnTrack(tr)
		return
	}
	drain(tr)
}

func (s *Session) endOutageLocked() {
	s.stats.Outage += time.Since(s.lostAt)
	s.lostAt = time.Time{}
}

func (s *Session) run(c *Client) {
	defer s.wg.Done()
	defer close(s.done)
	for {
		lost := s.watch(c)
		if s.ctx.Err() != nil {
			return
		}
		_ = c.Close()
		if final := finalEnd(c, lost); final != nil {
			s.finish(final)
			return
		}
		s.mu.Lock()
		if s.lostAt.IsZero() {
			s.lostAt = time.Now()
		}
		s.mu.Unlock()
		s.cfg.Logger.Info("connection lost; reconnecting", "participant", c.ParticipantID(), "why", describeEnd(c, lost))
		next, err := s.rejoin()
		if err != nil {
			if s.ctx.Err() == nil {
				s.finish(err)
			}
			return
		}
		s.mu.Lock()
		s.cur = next
		s.stats.Reconnects++
		s.mu.Unlock()
		c = next
	}
}

func (s *Session) finish(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	s.cfg.Logger.Warn("session ended", "err", err)
}

// watch waits until c's socket ends, its peer connection is lost, or the
// session is closed; it reports whether the peer connection was lost.
func (s *Session) watch(c *Client) (peerLost bool) {
	states := make(chan webrtc.PeerConnectionState, 8)
	c.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		select {
		case states <- st:
		default: // the watcher reads the current state below as well
		}
	})
	var timer *time.Timer
	var timeout <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	check := func(st webrtc.PeerConnectionState) bool {
		switch st {
		case webrtc.PeerConnectionStateFailed:
			return true
		case webrtc.PeerConnectionStateDisconnected:
			if timer == nil {
				timer = time.NewTimer(s.rc.PeerTimeout)
				timeout = timer.C
			}
		default:
			if timer != nil {
				timer.Stop()
				timer, timeout = nil, nil
			}
		}
		return false
	}
	if check(c.pc.ConnectionState()) {
		return true
	}
	for {
		select {
		case <-s.ctx.Done():
			return false
		case <-c.Done():
			return false
		case st := <-states:
			if check(st) {
				return true
			}
		case <-timeout:
			return true
		}
	}
}

// rejoin tries the servers in turn with jittered exponential backoff until
// one lets the participant in, the attempts run out, or a refusal is final.
func (s *Session) rejoin() (*Client, error) {
	deadline := time.Now().Add(s.rc.Deadline)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel()
	backoff := s.rc.MinBackoff
	var wait time.Duration // set by a Retry-After
	var last error
	for attempt := 1; attempt <= s.rc.MaxAttempts; attempt++ {
		if wait == 0 {
			wait = jitter(backoff)
			backoff = min(2*backoff, s.rc.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, s.gaveUp(attempt-1, last)
		case <-t.C:
		}
		c, err := s.dial(ctx)
		if err == nil {
			return c, nil
		}
		last = err
		wait = 0
		var refused *RefusedError
		switch {
		case errors.As(err, &refused) && refused.Status == 401 && s.rc.NewToken != nil:
			tok, terr := s.rc.NewToken(ctx)
			if terr != nil {
				return nil, fmt.Errorf("%w: new token: %w", ErrGaveUp, terr)
			}
			s.mu.Lock()
			s.token = tok
			s.mu.Unlock()
		case errors.As(err, &refused) && !refused.Retryable():
			return nil, fmt.Errorf("%w: %w", ErrFinal, err)
		case errors.As(err, &refused) && refused.RetryAfter > 0:
			// The server says when to come back (a room being taken
			// over): that, spread by up to half again, instead of a
			// backoff that would overshoot it.
			wait = refused.RetryAfter + time.Duration(rand.Int64N(int64(refused.RetryAfter/2)+1))
			s.nextURL()
			s.cfg.Logger.Info("rejoin refused", "attempt", attempt, "err", err, "retry_after", refused.RetryAfter)
			continue
		default:
			// Refused for now, not reached, or timed out: try the next
			// node.
			s.nextURL()
		}
		s.cfg.Logger.Info("rejoin failed", "attempt", attempt, "err", err)
	}
	return nil, s.gaveUp(s.rc.MaxAttempts, last)
}

func (s *Session) gaveUp(attempts int, last error) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	return fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, attempts, last)
}

func (s *Session) nextURL() {
	s.mu.Lock()
	s.urlIdx = (s.urlIdx + 1) % len(s.urls)
	s.mu.Unlock()
}

// jitter spreads d over [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

// finalReasons are the leave reasons after which joining again is wrong:
// the participant left, was removed, or its room or session is over.
var finalReasons = map[string]bool{
	"left": true, "kicked": true, "replaced": true, "room-ended": true, "room-deleted": true,
	"session-ended": true, "remove-after-elapsed": true,
}

// finalEnd returns ErrFinal wrapped with why, when the way c ended means
// the participant must not join again; nil when it should.
func finalEnd(c *Client, peerLost bool) error {
	if peerLost {
		return nil
	}
	if r := c.LeftReason(); r != "" {
		if finalReasons[r] {
			return fmt.Errorf("%w: left: %s", ErrFinal, r)
		}
		return nil // server-shutdown, room-failed, disconnected, connection-failed
	}
	code := websocket.CloseStatus(c.Err())
	switch {
	case code == websocket.StatusNormalClosure:
		// A 1000 close's reason is the leave reason.
		var ce websocket.CloseError
		if errors.As(c.Err(), &ce) && finalReasons[ce.Reason] {
			return fmt.Errorf("%w: closed: %s", ErrFinal, ce.Reason)
		}
		return nil
	case code == websocket.StatusPolicyViolation:
		var ce websocket.CloseError
		if errors.As(c.Err(), &ce) && ce.Reason == "too slow" {
			return nil
		}
		return fmt.Errorf("%w: closed: %w", ErrFinal, c.Err())
	case code == websocket.StatusMessageTooBig:
		return fmt.Errorf("%w: closed: %w", ErrFinal, c.Err())
	case code >= 4000 && code < 5000:
		if (&RefusedError{Status: int(code) - 4000}).Retryable() {
			return nil
		}
		return fmt.Errorf("%w: closed: %w", ErrFinal, c.Err())
	}
	// 1001 (a node going away), no close frame at all (a node that died),
	// or a network error.
	return nil
}

func describeEnd(c *Client, peerLost bool) string {
	if peerLost {
		return "peer connection lost"
	}
	if r := c.LeftReason(); r != "" {
		return "left: " + r
	}
	if err := c.Err(); err != nil {
		return err.Error()
	}
	return "socket ended"
}
