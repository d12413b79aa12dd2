package httpapi

import (
	"bytes"
	"context"
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

// OwnerLocator finds the nodes of a cluster, so that a request for a room
// another node owns is forwarded to it.
type OwnerLocator interface {
	// OwnerURL returns the advertise URL of the node nodeID.
	OwnerURL(ctx context.Context, nodeID string) (string, error)
}

const (
	// ownerLookupTimeout bounds the lookup of the owner's URL.
	ownerLookupTimeout = 5 * time.Second
	// forwardDialTimeout bounds connecting to the owner.
	forwardDialTimeout = 10 * time.Second
)

// newForwardTransport is the client side of forwarding: its own pool of
// connections to the other nodes, closed with the Server.
func newForwardTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: forwardDialTimeout}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// forward proxies the request to the node that owns its room when err says
// that another node owns it, and reports whether it did. It is the one
// place where a request leaves for another node; abort calls it with every
// error, so every route whose room lives elsewhere is forwarded: the REST
// routes of a room, a WebSocket join with a token (before the upgrade,
// which the owner then answers), and WHIP and WHEP.
//
// A request is not forwarded, and gets the error as it is (503
// room_unavailable), on a single node, when no node is known to own the
// room, when the request was forwarded once already (ForwardedByHeader), or
// when the owner's address cannot be found.
func (s *Server) forward(c *gin.Context, err error) bool {
	var noe *actors.NotOwnerError
	if s.cfg.Owners == nil || !errors.As(err, &noe) || noe.Owner == "" || noe.Owner == s.cfg.NodeID {
		return false
	}
	r := c.Request
	if r.Header.Get(ForwardedByHeader) != "" || c.Writer.Written() {
		return false
	}
	lookupCtx, cancel := context.WithTimeout(r.Context(), ownerLookupTimeout)
	target, lerr := s.cfg.Owners.OwnerURL(lookupCtx, noe.Owner)
	cancel()
	var u *url.URL
	if lerr == nil {
		u, lerr = url.Parse(target)
		if lerr == nil && (u.Scheme == "" || u.Host == "") {
			lerr = errors.New("not an absolute URL: " + target)
		}
	}
	if lerr != nil {
		s.log.Warn("find the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "err", lerr)
		return false
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
	in := r.WithContext(ctx)
	if body, ok := c.Get(ctxBody); ok {
		// Read already (the /api/v1 body, a WHIP or WHEP offer): replay it.
		b := body.([]byte)
		in.Body, in.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	}
	from := s.cfg.NodeID
	if from == "" {
		from = "unnamed"
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
			pr.Out.Header.Set(ForwardedByHeader, from)
		},
		Transport: s.forwarder,
		ErrorLog:  slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, perr error) {
			s.log.Warn("forward to the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "err", perr)
			s.abort(c, newAPIError(http.StatusServiceUnavailable, codeRoomUnavailable, "the node that owns the room did not answer; retry"))
		},
	}
	s.log.Debug("forwarding to the owner of a room", "room", noe.RoomID, "owner", noe.Owner, "url", target)
	proxy.ServeHTTP(c.Writer, in)
	return true
}
