package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/troupe-media/troupe/actors"
)

// Defaults of the signaling Config fields.
const (
	defaultPingInterval   = 15 * time.Second
	defaultSignalingQueue = 256
	defaultSignalingRate  = 20 // messages a second per socket
	defaultSignalingBurst = 40 // a join's trickled candidates fit
)

const (
	// signalWriteTimeout bounds one frame's write; a client whose socket
	// stays full that long is gone.
	signalWriteTimeout = 10 * time.Second
	// joinMessageTimeout is how long a socket opened without a token may
	// wait before its join message.
	joinMessageTimeout = 10 * time.Second
	// maxBadMessages in a row close the socket: a client that keeps sending
	// garbage is broken or hostile.
	maxBadMessages = 10
	// leaveTimeout bounds the Leave sent when a socket ends.
	leaveTimeout = 5 * time.Second
)

// WebSocket close codes. 4000 + an HTTP status is a join that failed with
// that status (4401, 4403, 4404, 4409, 4503); the close reason is the
// error code.
const (
	closeJoinFailed = 4000
	// closeTooSlow: the client did not read its messages fast enough.
	closeTooSlow = websocket.StatusPolicyViolation
)

// Why a socket ended; the handler turns it into the participant's leave
// reason and the close frame.
var (
	errClientClosed = errors.New("the socket ended")
	errLeft         = errors.New("the participant left")
	errTooSlow      = errors.New("client too slow")
	errDead         = errors.New("client stopped answering")
	errBadClient    = errors.New("too many invalid messages")
	errFlooding     = errors.New("message rate exceeded")
	errShutdown     = errors.New("server shutting down")
)

// outMsg is a message waiting to be written: v as JSON, or raw (a frame
// relayed from the room's owner) as a frame of rawType; neither for a
// final message that only closes.
type outMsg struct {
	v       any
	raw     []byte
	rawType websocket.MessageType
	// final closes the socket after the message, with closeCode and
	// closeReason.
	final       bool
	closeCode   websocket.StatusCode
	closeReason string
	// cause is why a final message ends the socket; nil means errLeft.
	cause error
}

// signalConn is one signaling WebSocket: the actors.Signaler of its
// participant. Its reader is the HTTP handler's goroutine; its writer is
// the one goroutine it starts, and the only one that closes the socket.
type signalConn struct {
	s   *Server
	ws  *websocket.Conn
	log *slog.Logger
	// queue holds pointers: its buffer is allocated whole for every
	// connection, and messages are few.
	queue chan *outMsg
	// ctx bounds the socket's reads and writes; it is canceled once the
	// writer has closed the socket.
	ctx    context.Context
	cancel context.CancelFunc
	// limit is the client's message rate; read by the reader only.
	limit *rate.Limiter
	// lastFrame is when the client last sent anything (a pong included), in
	// Unix nanoseconds: the reader deadline.
	lastFrame atomic.Int64
	// joinSeen: a join message came. The join deadline is for its coming;
	// the join itself (relayed to a slow owner, say) is bounded by its
	// own timeouts and either joins or ends the socket.
	joinSeen   atomic.Bool
	stopped    chan struct{} // closed by stop: the writer closes the socket
	writerDone chan struct{}

	// Set once joined; read by the reader only.
	p *actors.Participant
	// joinWait gives back the socket's place among those waiting for
	// their join message (pendingJoins); nil for a socket with a token.
	// Read by the reader only.
	joinWait func()
	// relay is set when the join was relayed to the room's owner
	// (wsrelay.go); read by the reader only, then by finish.
	relay *wsRelay
	// forwarded: the socket was relayed here by another node; it is
	// never relayed again.
	forwarded bool
	// base is the scheme and host of the rooms' links, as seen from the
	// socket's request (publicBase).
	base string

	mu sync.Mutex // guards the following
	// hold keeps the room's signals back until joined is queued: the room
	// may signal (an offer of its tracks) before Join has returned.
	hold    bool
	held    []outMsg
	closing bool // a final message is queued or the socket is being dropped
	// Why the socket ends: the first stop wins.
	cause       error
	closeCode   websocket.StatusCode
	closeReason string
}

func (s *Server) newSignalConn() *signalConn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &signalConn{
		s: s, log: s.log, ctx: ctx, cancel: cancel,
		queue:      make(chan *outMsg, s.cfg.SignalingQueue),
		limit:      rate.NewLimiter(rate.Limit(s.cfg.SignalingRate), s.cfg.SignalingBurst),
		stopped:    make(chan struct{}),
		writerDone: make(chan struct{}),
		hold:       true, // until joined is queued
	}
	c.lastFrame.Store(time.Now().UnixNano())
	return c
}

// stop asks the writer to close the socket with code and reason; cause
// says why, for the participant's leave reason. Only the first call counts.
func (c *signalConn) stop(cause error, code websocket.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked(cause, code, reason)
}

func (c *signalConn) stopLocked(cause error, code websocket.StatusCode, reason string) {
	c.closing = true
	if c.cause != nil {
		return
	}
	c.cause, c.closeCode, c.closeReason = cause, code, reason
	close(c.stopped)
}

func (c *signalConn) stopCause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Signal implements actors.Signaler. It never blocks.
func (c *signalConn) Signal(sig actors.Signal) {
	v, err := signalMsg(sig)
	if err != nil {
		c.s.log.Error("signal", "err", err) // not c.log: the reader may be replacing it
		return
	}
	c.send(outMsg{v: v}, true)
}

// Close implements actors.Signaler: the room removed the participant.
func (c *signalConn) Close(reason actors.LeaveReason) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.held = append(c.held, outMsg{v: leftMsg{Type: msgLeft, Reason: string(reason)}, final: true, closeCode: websocket.StatusNormalClosure, closeReason: string(reason)})
	if !c.hold {
		c.flushLocked()
	}
	c.closing = true
}

// send queues m; fromRoom messages wait while the connection holds.
func (c *signalConn) send(m outMsg, fromRoom bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if m.final {
		c.closing = true
	}
	if fromRoom && c.hold {
		if len(c.held) >= cap(c.queue) {
			c.dropLocked()
			return
		}
		c.held = append(c.held, m)
		return
	}
	c.enqueueLocked(m)
}

func (c *signalConn) enqueueLocked(m outMsg) {
	select {
	case c.queue <- &m:
	default:
		c.dropLocked()
	}
}

// dropLocked gives up on a client that does not read its messages.
func (c *signalConn) dropLocked() {
	c.stopLocked(errTooSlow, closeTooSlow, "too slow")
}

// release queues first (if any), then what was held.
func (c *signalConn) release(first any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if first != nil {
		c.enqueueLocked(outMsg{v: first})
	}
	c.flushLocked()
	c.hold = false
}

func (c *signalConn) flushLocked() {
	for _, m := range c.held {
		c.enqueueLocked(m)
	}
	c.held = nil
}

// reply queues a message that answers the client (an answer, an error,
// a pong): it is not held.
func (c *signalConn) reply(v any) { c.send(outMsg{v: v}, false) }

func (c *signalConn) replyError(err error, req string) {
	m, unexpected := errorMsgFor(err, req)
	if unexpected {
		c.log.Error("signaling request failed", "request", req, "err", err)
	}
	c.reply(m)
}

// signaling serves GET /rtc. With a token (?token= or a bearer header) the
// participant joins before the upgrade, so that a refused join is a plain
// HTTP error; without one, the client's first message must be join.
func (s *Server) signaling(g *gin.Context) {
	r := g.Request
	if !headerHas(r.Header, "Connection", "upgrade") || !headerHas(r.Header, "Upgrade", "websocket") {
		g.Header("Upgrade", "websocket")
		s.abort(g, newAPIError(http.StatusUpgradeRequired, codeUpgradeRequired, "this route speaks WebSocket"))
		return
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		token, _ = bearerToken(r)
	}
	c := s.newSignalConn()
	c.forwarded = r.Header.Get(ForwardedByHeader) != ""
	c.base = s.publicBase(r)
	defer c.cancel()
	if !s.live.addConn(c) {
		s.abort(g, newAPIError(http.StatusServiceUnavailable, codeNotReady, "the server is shutting down"))
		return
	}
	defer s.live.removeConn(c)

	var info *actors.JoinInfo
	if token == "" && !c.forwarded {
		// A join another node relays (signed: forwardedHere) was counted
		// there, by its client's address; here every relay would share
		// the relaying node's.
		release, err := s.pending.acquire(s.clientKey(r))
		if err != nil {
			s.abort(g, err)
			return
		}
		c.joinWait = release
		defer release()
	} else if token != "" {
		claims, err := s.joinClaims(token)
		if err != nil {
			s.abort(g, err)
			return
		}
		p, ji, err := s.cfg.Rooms.Join(r.Context(), actors.RoomID(claims.Room), joinRequest(claims, actors.ClientSignaling, c))
		if err != nil {
			s.abort(g, err)
			return
		}
		c.p, info = p, ji
		c.log = c.log.With("room", p.RoomID, "participant", p.ID)
	}
	if err := s.accept(g, c); err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		if c.p != nil {
			c.leave(actors.ReasonDisconnected)
		}
		return
	}
	go c.writeLoop(c.p == nil) // decided here: the reader sets c.p on a join message
	if info != nil {
		c.release(c.joinedMsg(info))
	}
	c.readLoop()
	c.finish()
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

func (s *Server) accept(g *gin.Context, c *signalConn) error {
	// net/http's read and write timeouts stay on a hijacked connection;
	// the socket has its own deadlines.
	rc := http.NewResponseController(g.Writer)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(g.Writer, g.Request, &websocket.AcceptOptions{
		// Browsers send their page's origin; signaling is authorized by
		// the token, not by cookies, so any origin may connect.
		InsecureSkipVerify: true,
		OnPongReceived: func(context.Context, []byte) {
			c.lastFrame.Store(time.Now().UnixNano())
		},
	})
	if err != nil {
		return err
	}
	ws.SetReadLimit(maxSignalFrame)
	c.ws = ws
	g.Abort()
	return nil
}

// readLoop reads and handles client frames until the socket ends.
func (c *signalConn) readLoop() {
	// bad counts the client's mistakes in a row, limited its messages
	// refused in a row for the rate.
	bad, limited := 0, 0
	for {
		typ, rd, err := c.ws.Reader(c.ctx)
		if err != nil {
			if c.relay != nil {
				c.relay.clientClosed(err)
			}
			c.stop(errClientClosed, websocket.StatusNormalClosure, "")
			return
		}
		c.lastFrame.Store(time.Now().UnixNano())
		if c.relay != nil {
			if err := c.relay.toOwner(c.ctx, typ, rd); err != nil {
				c.stop(errClientClosed, websocket.StatusGoingAway, "the room's node went away")
				return
			}
			continue
		}
		var msgErr error
		var req string
		if typ != websocket.MessageText {
			msgErr = newAPIError(http.StatusBadRequest, codeBinaryMessage, "messages are JSON text frames")
		}
		b, err := io.ReadAll(io.LimitReader(rd, maxSignalMessage+1))
		if err == nil && len(b) > maxSignalMessage {
			// Skip the rest of the frame: the socket stays usable.
			_, err = io.Copy(io.Discard, rd)
			msgErr = newAPIError(http.StatusRequestEntityTooLarge, codeMessageTooLarge, "messages must be at most 65536 bytes")
		}
		if err != nil {
			c.stop(errClientClosed, websocket.StatusMessageTooBig, "message too big")
			return
		}
		if msgErr == nil && !c.limit.AllowN(c.s.cfg.Clock.Now(), 1) {
			// Refused unread: a flood costs the room nothing. A client
			// that goes on regardless is closed, after the refusals
			// queued before (the reader reads on until the writer has
			// closed the socket; what comes meanwhile is dropped).
			m, _ := errorMsgFor(rateLimited("too many messages: this one was not handled; slow down", time.Second), "")
			if limited++; limited >= maxBadMessages {
				c.send(outMsg{v: m, final: true, closeCode: websocket.StatusPolicyViolation, closeReason: "message rate exceeded", cause: errFlooding}, false)
			} else {
				c.reply(m)
			}
			continue
		}
		limited = 0
		if msgErr == nil {
			var m clientMsg
			m, msgErr = decodeClientMsg(b)
			req = m.typ
			if msgErr == nil && m.typ == msgJoin {
				c.joinSeen.Store(true)
				if c.joinWait != nil {
					c.joinWait()
				}
			}
			if msgErr == nil {
				msgErr = c.handle(m)
			}
		}
		if msgErr == nil {
			bad = 0
			continue
		}
		c.replyError(msgErr, req)
		var ae *apiError
		if errors.As(msgErr, &ae) && ae.status < 500 && ae.code != codeSignalingState {
			// The client's own mistake (it changed nothing); too many in
			// a row and the client is broken.
			if bad++; bad >= maxBadMessages {
				c.stop(errBadClient, websocket.StatusPolicyViolation, "too many invalid messages")
				return
			}
		}
	}
}

// handle carries out one client message.
func (c *signalConn) handle(m clientMsg) error {
	if m.typ == msgPing {
		c.reply(typeOnlyMsg{Type: msgPong})
		return nil
	}
	if m.typ == msgJoin {
		return c.join(m.token)
	}
	if c.p == nil {
		return newAPIError(http.StatusBadRequest, codeNotJoined, "the first message must be join (or connect with ?token=)")
	}
	ctx, cancel := context.WithTimeout(c.ctx, signalRequestTimeout)
	defer cancel()
	switch m.typ {
	case msgOffer:
		// The answer comes as a signal, in order with what the room sends
		// after it (candidates, the server's next offer).
		_, err := c.p.OfferTracks(ctx, m.sdp, m.sources)
		return err
	case msgAnswer:
		return c.p.Answer(ctx, m.sdp)
	case msgCandidate:
		return c.p.AddCandidate(ctx, m.cand)
	case msgMute:
		return c.p.SetMuted(ctx, m.track, m.kind, m.muted)
	case msgHand:
		return c.p.RaiseHand(ctx, m.raised)
	case msgTrackSettings:
		return c.p.SetTrackSettings(ctx, m.track, m.settings)
	case msgSubscribe, msgUnsubscribe:
		return c.p.Subscribe(ctx, m.track, m.typ == msgSubscribe)
	case msgLeave:
		// The room closes the socket, with a left message, once the
		// participant is gone.
		return c.p.Leave(ctx, actors.ReasonLeft)
	}
	return newAPIError(http.StatusBadRequest, codeUnknownType, "unknown message type")
}

// signalRequestTimeout bounds one signaling request; the actors answer
// within their own, shorter, timeout.
const signalRequestTimeout = 30 * time.Second

// join handles a join message: the token arrives in the first message
// rather than in the URL, where it might be logged. A join that fails ends
// the socket: the client learns why from an error message and the close
// code (4000 + the HTTP status).
func (c *signalConn) join(token string) error {
	if c.p != nil {
		return newAPIError(http.StatusConflict, codeAlreadyJoined, "already joined")
	}
	err := c.tryJoin(token)
	if noe, ok := c.relayable(err); ok {
		err = c.relayJoin(noe, token)
	}
	if err == nil {
		return nil
	}
	m, unexpected := errorMsgFor(err, msgJoin)
	if unexpected {
		c.log.Error("join failed", "err", err)
	}
	if noe, ok := c.s.otherOwner(err); ok && c.forwarded {
		// The relaying node's hint was stale: it joins there instead.
		m.Owner = noe.Owner
	}
	ae, _ := toAPIError(err)
	c.send(outMsg{v: m, final: true, closeCode: websocket.StatusCode(closeJoinFailed + ae.status), closeReason: m.Code}, false)
	return nil
}

// joinedMsg is the joined message of a join here: its room runs on this
// node.
func (c *signalConn) joinedMsg(info *actors.JoinInfo) joinedMsg {
	m := newJoinedMsg(info)
	m.Room.NodeID = c.s.ownerID()
	m.Room.URL = roomURL(c.base, m.Room.ID)
	return m
}

// relayable returns the NotOwnerError of a join to relay to the room's
// owner: not on a socket relayed here already.
func (c *signalConn) relayable(err error) (*actors.NotOwnerError, bool) {
	if c.forwarded {
		return nil, false
	}
	return c.s.forwardable(err, nil)
}

func (c *signalConn) tryJoin(token string) error {
	claims, err := c.s.joinClaims(token)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.ctx, signalRequestTimeout)
	defer cancel()
	if c.forwarded {
		ctx = actors.Forwarded(ctx)
	}
	p, info, err := c.s.cfg.Rooms.Join(ctx, actors.RoomID(claims.Room), joinRequest(claims, actors.ClientSignaling, c))
	if err != nil {
		return err
	}
	c.p = p
	c.log = c.log.With("room", p.RoomID, "participant", p.ID)
	c.release(c.joinedMsg(info))
	return nil
}

// writeLoop writes queued messages, pings the client, and closes the
// socket when asked to stop, or when awaitJoin and no join message came
// in time.
func (c *signalConn) writeLoop(awaitJoin bool) {
	defer close(c.writerDone)
	ping := c.s.cfg.SignalingPingInterval
	ticker := time.NewTicker(ping)
	defer ticker.Stop()
	var joinDeadline <-chan time.Time
	if awaitJoin {
		t := time.NewTimer(joinMessageTimeout)
		defer t.Stop()
		joinDeadline = t.C
	}
	for {
		select {
		case m := <-c.queue:
			if err := c.write(m); err != nil {
				c.stop(errClientClosed, websocket.StatusGoingAway, "write failed")
				_ = c.ws.CloseNow()
				return
			}
			if m.final {
				cause := m.cause
				if cause == nil {
					cause = errLeft
				}
				c.stop(cause, m.closeCode, m.closeReason)
				c.closeWS()
				return
			}
		case <-ticker.C:
			if time.Since(time.Unix(0, c.lastFrame.Load())) > 2*ping {
				c.stop(errDead, websocket.StatusGoingAway, "no frames from the client")
				_ = c.ws.CloseNow()
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, ping)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.stop(errDead, websocket.StatusGoingAway, "ping timeout")
				_ = c.ws.CloseNow()
				return
			}
		case <-joinDeadline:
			c.mu.Lock()
			waiting := c.hold && !c.closing && !c.joinSeen.Load()
			c.mu.Unlock()
			if waiting {
				c.stop(errBadClient, websocket.StatusPolicyViolation, "no join message")
			}
		case <-c.stopped:
			c.closeWS()
			return
		}
	}
}

func (c *signalConn) write(m *outMsg) error {
	typ, b := m.rawType, m.raw
	if b == nil {
		if m.v == nil {
			return nil // a close alone
		}
		var err error
		if b, err = json.Marshal(m.v); err != nil {
			return err
		}
		typ = websocket.MessageText
	}
	ctx, cancel := context.WithTimeout(c.ctx, signalWriteTimeout)
	defer cancel()
	return c.ws.Write(ctx, typ, b)
}

// closeWS sends the close frame stop chose, without waiting long for the
// client's.
func (c *signalConn) closeWS() {
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.ws.Close(code, reason)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		_ = c.ws.CloseNow()
		<-done
	}
}

// finish runs when the reader has stopped: it waits for the writer to
// close the socket and makes the participant leave.
func (c *signalConn) finish() {
	c.stop(errClientClosed, websocket.StatusNormalClosure, "")
	<-c.writerDone
	if c.relay != nil {
		c.relay.end()
	}
	c.cancel()
	_ = c.ws.CloseNow()
	if c.p == nil {
		return
	}
	switch cause := c.stopCause(); {
	case errors.Is(cause, errLeft):
		// The room removed the participant (a final left message), or a
		// join failed: nothing to leave.
	case errors.Is(cause, errShutdown):
		c.leave(actors.ReasonServerShutdown)
	default:
		c.leave(actors.ReasonDisconnected)
	}
}

func (c *signalConn) leave(reason actors.LeaveReason) {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := c.p.Leave(ctx, reason); err != nil {
		c.log.Warn("leave after the socket ended", "err", err)
	}
}

// shutdown ends the socket for a server shutdown.
func (c *signalConn) shutdown() {
	c.stop(errShutdown, websocket.StatusGoingAway, "server shutting down")
}

var _ actors.Signaler = (*signalConn)(nil)
