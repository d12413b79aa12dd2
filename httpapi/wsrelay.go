package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/actors"
)

// A signaling socket whose join came as its first message, for a room
// another node owns (or that placement put there), is relayed: this node
// dials the owner's /rtc, sends it the join, then passes every frame on,
// both ways, as it is, until either side closes, and passes the close code
// and reason on to the other side. The socket's own reader sends the
// client's frames to the owner; one goroutine of the socket's reads the
// owner's and queues them for the socket's writer, so a client that does
// not read is dropped as any other. The relayed socket carries
// ForwardedByHeader: the owner never relays it again.

// maxRelayedFrame bounds a frame read from the owner: server messages
// carry SDP, larger than a client's messages may be.
const maxRelayedFrame = 1 << 20

// wsRelay is the owner's side of a relayed socket.
type wsRelay struct {
	ws   *websocket.Conn
	done chan struct{} // closed when fromOwner has returned

	// The client's close, passed on to the owner; set by the socket's
	// reader before finish reads it.
	clientCode   websocket.StatusCode
	clientReason string
}

// relayJoin relays the socket to the node that noe names, with a join of
// token. It returns an error, and changes nothing, if the owner cannot be
// found, reached, or does not answer the join within Config.ForwardTimeout;
// the owner's refusal of the join comes back as a frame and a close like
// any other. A node that refuses the join because yet another node owns
// the room (this node's hint was a moment behind) names that node: the
// join goes there, once, as a forwarded REST request does.
func (c *signalConn) relayJoin(noe *actors.NotOwnerError, token string) error {
	for retry := true; ; retry = false {
		ws, first, err := c.dialOwner(noe, token)
		if err != nil {
			return err
		}
		owner, refusal := ownerNamed(first)
		if retry && owner != "" && owner != noe.Owner && owner != c.s.cfg.NodeID {
			_ = ws.Close(websocket.StatusNormalClosure, "")
			c.log.Debug("the node relayed to does not own the room; relaying to its owner", "room", noe.RoomID,
				"to", noe.Owner, "owner", owner)
			noe = &actors.NotOwnerError{RoomID: noe.RoomID, Owner: owner}
			continue
		}
		if owner != "" {
			first = refusal // the owner's name is for nodes only
		}
		r := &wsRelay{ws: ws, done: make(chan struct{}), clientCode: websocket.StatusGoingAway}
		c.relay = r
		c.log = c.log.With("room", noe.RoomID, "relayed_to", noe.Owner)
		c.release(nil) // nothing held: the owner's messages come next
		c.send(outMsg{raw: first, rawType: websocket.MessageText}, false)
		go c.fromOwner(r)
		return nil
	}
}

// dialOwner opens a socket to the node noe names, sends it the join of
// token, and returns the socket with the owner's answer to the join: its
// first message, joined or an error.
func (c *signalConn) dialOwner(noe *actors.NotOwnerError, token string) (*websocket.Conn, []byte, error) {
	u, ok := c.s.ownerURL(c.ctx, noe)
	if !ok {
		return nil, nil, noe
	}
	u = u.JoinPath("rtc")
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.RawQuery = ""
	h := http.Header{}
	signForward(h, c.s.forwardKey, c.s.forwardedBy(), http.MethodGet, u.Path, c.s.cfg.Clock.Now())
	dialCtx, cancel := context.WithTimeout(c.ctx, forwardDialTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(dialCtx, u.String(), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: c.s.forwarder},
		HTTPHeader: h,
	})
	if err != nil {
		c.log.Warn("relay a join to the owner of its room", "room", noe.RoomID, "owner", noe.Owner, "err", err)
		return nil, nil, errors.Join(noe, err)
	}
	ws.SetReadLimit(maxRelayedFrame)
	join, err := json.Marshal(map[string]string{"type": msgJoin, "token": token})
	if err == nil {
		wctx, cancel := context.WithTimeout(c.ctx, signalWriteTimeout)
		err = ws.Write(wctx, websocket.MessageText, join)
		cancel()
	}
	var first []byte
	if err == nil {
		// A frozen owner takes the join and never answers it.
		rctx, cancel := context.WithTimeout(c.ctx, c.s.cfg.ForwardTimeout)
		var typ websocket.MessageType
		typ, first, err = ws.Read(rctx)
		cancel()
		if err == nil && typ != websocket.MessageText {
			err = errors.New("the owner answered the join with a binary frame")
		}
	}
	if err != nil {
		_ = ws.CloseNow()
		c.log.Warn("relay a join to the owner of its room", "room", noe.RoomID, "owner", noe.Owner, "err", err)
		return nil, nil, errors.Join(noe, err)
	}
	return ws, first, nil
}

// ownerNamed reads the owner's answer to a relayed join: the node it names
// as the room's owner if it refused the join for that (errorMsg.Owner), and
// the answer without that name, for the client.
func ownerNamed(first []byte) (owner string, refusal []byte) {
	var m map[string]json.RawMessage
	if json.Unmarshal(first, &m) != nil || string(m["type"]) != `"`+msgError+`"` {
		return "", nil
	}
	if json.Unmarshal(m["owner"], &owner) != nil || owner == "" {
		return "", nil
	}
	delete(m, "owner")
	refusal, err := json.Marshal(m)
	if err != nil {
		return "", nil // from json.Unmarshal: cannot be
	}
	return owner, refusal
}

// fromOwner queues the owner's frames for the client until the owner's
// side ends, then ends the client's socket with the owner's close.
func (c *signalConn) fromOwner(r *wsRelay) {
	defer close(r.done)
	for {
		typ, b, err := r.ws.Read(c.ctx)
		if err != nil {
			code, reason := relayedClose(err, "the room's node closed the connection")
			c.send(outMsg{final: true, closeCode: code, closeReason: reason}, false)
			return
		}
		c.send(outMsg{raw: b, rawType: typ}, false)
	}
}

// toOwner passes one client frame on to the owner.
func (r *wsRelay) toOwner(ctx context.Context, typ websocket.MessageType, rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, signalWriteTimeout)
	defer cancel()
	return r.ws.Write(wctx, typ, b)
}

// clientClosed records why the client's side ended, to tell the owner.
func (r *wsRelay) clientClosed(err error) {
	r.clientCode, r.clientReason = relayedClose(err, "")
}

// end closes the owner's side with the client's close and waits for
// fromOwner.
func (r *wsRelay) end() {
	_ = r.ws.Close(r.clientCode, r.clientReason)
	<-r.done
}

// relayedClose is the close to pass on for the error that ended one side:
// its close frame's code and reason, or going away if there was none
// (codes that no close frame may carry included).
func relayedClose(err error, reason string) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		return websocket.StatusGoingAway, reason
	}
	switch ce.Code {
	case websocket.StatusNoStatusRcvd:
		return websocket.StatusNormalClosure, ""
	case websocket.StatusAbnormalClosure, websocket.StatusTLSHandshake:
		return websocket.StatusGoingAway, reason
	}
	return ce.Code, ce.Reason
}
