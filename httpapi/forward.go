package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// ForwardedByHeader marks a request that a node of the cluster forwarded to
// the owner of its room; its value is the forwarding node's id. A request
// that carries it is never forwarded again: two nodes that disagree for a
// moment on who owns a room answer 503 room_unavailable rather than pass
// the request back and forth.
const ForwardedByHeader = "Troupe-Forwarded-By"

// OwnerHeader is set on a 503 room_unavailable answer to a forwarded
// request for a room that the answering node found, in etcd, another node
// owns; its value is that node's id. The forwarding node, which chose this
// node from its hint of the owners (a watch a moment behind), sends the
// request once more, to the node named; the node named never forwards it.
const OwnerHeader = "Troupe-Owner"

// OwnerLocator finds the nodes of a cluster, so that a request for a room
// another node owns is forwarded to it.
type OwnerLocator interface {
	// OwnerURL returns the advertise URL of the node nodeID.
	OwnerURL(ctx context.Context, nodeID string) (string, error)
	// RoomOwners returns the owner of each of roomIDs that a node owns,
	// by room id, for the node_id of listed rooms.
	RoomOwners(ctx context.Context, roomIDs []string) (map[string]string, error)
}

const (
	// ownerLookupTimeout bounds the lookup of the owner's URL.
	ownerLookupTimeout = 5 * time.Second
	// forwardDialTimeout bounds connecting to the owner.
	forwardDialTimeout = 10 * time.Second
	// defaultForwardTimeout is Config.ForwardTimeout's default.
	defaultForwardTimeout = 10 * time.Second
)

// newForwardTransport is the client side of forwarding: its own pool of
// connections to the other nodes, closed with the Server. A stopped
// process's kernel still accepts connections and takes the request's
// bytes, so only the wait for the answer's headers (answer) tells a frozen
// owner from a slow one.
func newForwardTransport(answer time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: forwardDialTimeout}).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: answer,
	}
}

// otherOwner returns the NotOwnerError of err when, in a cluster, it names
// another node.
func (s *Server) otherOwner(err error) (*actors.NotOwnerError, bool) {
	var noe *actors.NotOwnerError
	if s.cfg.Owners == nil || !errors.As(err, &noe) || noe.Owner == "" || noe.Owner == s.cfg.NodeID {
		return nil, false
	}
	return noe, true
}

// forwardable returns the NotOwnerError of err when it names another node
// to forward to: in a cluster, for a request not forwarded already (h is
// its header).
func (s *Server) forwardable(err error, h http.Header) (*actors.NotOwnerError, bool) {
	if h.Get(ForwardedByHeader) != "" {
		return nil, false
	}
	return s.otherOwner(err)
}

// ownerURL finds the advertise URL of the room's owner; false, logged, if
// it cannot.
func (s *Server) ownerURL(ctx context.Context, noe *actors.NotOwnerError) (*url.URL, bool) {
	lookupCtx, cancel := context.WithTimeout(ctx, ownerLookupTimeout)
	target, err := s.cfg.Owners.OwnerURL(lookupCtx, noe.Owner)
	cancel()
	var u *url.URL
	if err == nil {
		u, err = url.Parse(target)
		if err == nil && (u.Scheme == "" || u.Host == "") {
			err = errors.New("not an absolute URL: " + target)
		}
	}
	if err != nil {
		s.log.Warn("find the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "err", err)
		return nil, false
	}
	return u, true
}

// forwardedHere marks the context of a request another node forwarded
// here: its room's owner is asked of etcd, not of this node's hint
// (actors.Forwarded). A ForwardedByHeader not signed by a node of the
// cluster is taken off first (checkForward): the request is an outside one.
func (s *Server) forwardedHere(c *gin.Context) {
	s.checkForward(c.Request)
	if s.cfg.Owners != nil && c.Request.Header.Get(ForwardedByHeader) != "" {
		c.Request = c.Request.WithContext(actors.Forwarded(c.Request.Context()))
	}
	c.Next()
}

// nameOwner sets OwnerHeader on the answer to a forwarded request whose
// room another node owns (err): the forwarder retries there.
func (s *Server) nameOwner(c *gin.Context, err error) {
	if c.Writer.Written() || c.Request.Header.Get(ForwardedByHeader) == "" {
		return
	}
	if noe, ok := s.otherOwner(err); ok {
		c.Header(OwnerHeader, noe.Owner)
	}
}

// staleOwner is what a forward's proxy reports when the node it reached
// answered that yet another node owns the room (OwnerHeader).
type staleOwner struct{ owner string }

func (e *staleOwner) Error() string { return "the room is owned by node " + e.owner }

// forwardedBy is the ForwardedByHeader this node sends.
func (s *Server) forwardedBy() string {
	if s.cfg.NodeID == "" {
		return "unnamed"
	}
	return s.cfg.NodeID
}

// errOwnerSilent answers a request whose room's owner gave no answer.
var errOwnerSilent = newAPIError(http.StatusServiceUnavailable, codeRoomUnavailable, "the node that owns the room did not answer; retry")

// forwardRoomID makes a create forwarded for err carry the room id this node
// chose (the body had none): the owner creates the room placed under that
// id rather than choose another, which would be placed anew.
func (s *Server) forwardRoomID(c *gin.Context, err error, id actors.RoomID) {
	var noe *actors.NotOwnerError
	if !errors.As(err, &noe) {
		return
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(requestBody(c), &fields) != nil || fields == nil {
		return // validated already: cannot be
	}
	fields["id"], _ = json.Marshal(string(id))
	b, merr := json.Marshal(fields)
	if merr != nil {
		return
	}
	c.Set(ctxBody, b)
}

// forward proxies the request to the node that owns its room when err says
// that another node owns it, and reports whether it did. It is the one
// place where a request leaves for another node (besides a signaling
// socket relayed after its join message, wsrelay.go); abort calls it with
// every error, so every route whose room lives elsewhere is forwarded: the
// REST routes of a room, a WebSocket join with a token (before the
// upgrade, which the owner then answers), and WHIP and WHEP. A room that
// placement put on another node is forwarded the same way: the error
// names the node that owns it now.
//
// The owner named may come from this node's hint of the owners, which
// lags etcd by the watch's delay: the node reached then answers from etcd,
// and when it names yet another owner (OwnerHeader), the request is sent
// there, once. A request whose body cannot be sent again is not.
//
// A request is not forwarded, and gets the error as it is (503
// room_unavailable), on a single node, when no node is known to own the
// room, when the request was forwarded once already (ForwardedByHeader), or
// when the owner's address cannot be found.
func (s *Server) forward(c *gin.Context, err error) bool {
	return s.forwardOr(c, err, false)
}

// forwardOr is forward; with unreached, an owner that cannot be found or
// reached (no answer begun) gets no answer written: forwardOr returns
// false for the caller to do otherwise.
func (s *Server) forwardOr(c *gin.Context, err error, unreached bool) bool {
	r := c.Request
	noe, ok := s.forwardable(err, r.Header)
	if !ok || c.Writer.Written() {
		s.nameOwner(c, err)
		return false
	}
	u, ok := s.ownerURL(r.Context(), noe)
	if !ok {
		return false
	}
	var failed *bool
	if unreached {
		failed = new(bool)
	}

	ctx := r.Context()
	if headerHas(r.Header, "Connection", "upgrade") {
		// The socket outlives the request: Close ends it, and net/http's
		// read and write timeouts must not.
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		defer context.AfterFunc(s.live.ctx, stop)()
		rc := http.NewResponseController(c.Writer)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	body, replay := c.Get(ctxBody) // read already (the /api/v1 body, a WHIP or WHEP offer)
	retry := replay || r.Body == nil || r.Body == http.NoBody
	for {
		in := r.WithContext(ctx)
		if replay {
			b := body.([]byte)
			in.Body, in.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		stale := s.proxy(c, in, noe, u, retry, failed)
		if failed != nil && *failed {
			return false
		}
		if stale == nil {
			return true
		}
		s.log.Debug("the node forwarded to does not own the room; forwarding to its owner", "room", noe.RoomID,
			"to", noe.Owner, "owner", stale.owner)
		noe = &actors.NotOwnerError{RoomID: noe.RoomID, Owner: stale.owner}
		if u, ok = s.ownerURL(r.Context(), noe); !ok {
			if unreached {
				return false
			}
			s.abort(c, newAPIError(http.StatusServiceUnavailable, codeRoomUnavailable, "the node that owns the room could not be found; retry"))
			return true
		}
		retry = false
	}
}

// proxy sends in to the owner noe names, at u, and copies its answer back.
// With retry, an answer naming yet another owner (OwnerHeader) is not
// copied: proxy returns it, for the caller to send in there. With failed,
// an owner that gives no answer gets none written: *failed says so.
func (s *Server) proxy(c *gin.Context, in *http.Request, noe *actors.NotOwnerError, u *url.URL, retry bool, failed *bool) *staleOwner {
	var stale *staleOwner
	from := s.forwardedBy()
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			signForward(pr.Out.Header, s.forwardKey, from, pr.Out.Method, pr.Out.URL.Path, s.cfg.Clock.Now())
		},
		Transport: s.forwarder,
		ErrorLog:  slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ModifyResponse: func(resp *http.Response) error {
			owner := resp.Header.Get(OwnerHeader)
			if !retry || resp.StatusCode != http.StatusServiceUnavailable || owner == "" || owner == noe.Owner || owner == s.cfg.NodeID {
				resp.Header.Del(OwnerHeader) // between nodes only
				return nil
			}
			return &staleOwner{owner: owner}
		},
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, perr error) {
			if errors.As(perr, &stale) {
				return
			}
			s.log.Warn("forward to the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "err", perr)
			if failed != nil {
				*failed = true
				return
			}
			s.abort(c, errOwnerSilent)
		},
	}
	s.log.Debug("forwarding to the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "url", u.String())
	p.ServeHTTP(c.Writer, in)
	return stale
}
