package httpapi

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
)

const (
	contentTypeSDP        = "application/sdp"
	contentTypeJSON       = "application/json"
	contentTypeTrickleICE = "application/trickle-ice-sdpfrag"
)

// whipSession is a WHIP or WHEP client's stay in a room, from its POST to
// its DELETE. It is its participant's Signaler only to learn when the room
// removes it (kick, end); WHIP and WHEP have no channel for the room's
// events.
type whipSession struct {
	identity string
	kind     actors.ClientKind
	live     *liveSessions

	mu sync.Mutex // guards the following
	// p is set once the offer is answered, and never changes after.
	p *actors.Participant
	// closed: the room has removed the participant. It may do so before
	// Join has even returned (a second WHIP join with the same token
	// replaces the first at once).
	closed bool
}

func (w *whipSession) Signal(actors.Signal) {}

func (w *whipSession) Close(actors.LeaveReason) {
	w.mu.Lock()
	w.closed = true
	p := w.p
	w.mu.Unlock()
	if p != nil {
		w.live.removeWHIP(p.ID)
	}
}

// register makes the session reachable at its Location, unless the room
// has removed its participant meanwhile.
func (w *whipSession) register(p *actors.Participant) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("the participant left before its session started: %w", actors.ErrParticipantNotFound)
	}
	w.p = p
	if !w.live.addWHIP(w) {
		return newAPIError(http.StatusServiceUnavailable, codeNotReady, "the server is shutting down")
	}
	return nil
}

// whipKind tells WHIP (publish) from WHEP (subscribe) by the route.
func whipKind(c *gin.Context) (actors.ClientKind, string) {
	if strings.HasPrefix(c.FullPath(), "/whep/") {
		return actors.ClientWHEP, "whep"
	}
	return actors.ClientWHIP, "whip"
}

// whipOffer serves POST /whip/{room} and POST /whep/{room} (RFC 9725 and
// the WHEP draft): the body is the client's offer; the answer carries every
// server candidate. The client may trickle its own (whipTrickle). Each
// client address, and each token identity of a room, may post
// Config.WHIPRate offers a second: the address is counted first, as
// everything after costs more than the refusal; the identity once its
// token is verified, so that one token used from many addresses is held
// too (a request a cluster node forwarded was counted by that node).
func (s *Server) whipOffer(c *gin.Context) error {
	limited := s.whipOffers != nil && !actors.IsForwarded(c.Request.Context())
	if limited {
		if ok, wait := s.whipOffers.allow(s.clientKey(c.Request)); !ok {
			return rateLimited("too many WHIP and WHEP offers from this address; retry later", wait)
		}
	}
	kind, prefix := whipKind(c)
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	room := actors.RoomID(c.Param("room"))
	if actors.RoomID(claims.Room) != room {
		return newAPIError(http.StatusForbidden, codeForbidden, "the token is for another room")
	}
	if limited {
		// An address has no space: these keys never meet theirs.
		if ok, wait := s.whipOffers.allow("identity " + string(room) + "/" + claims.Subject); !ok {
			return rateLimited("too many WHIP and WHEP offers with this token's identity; retry later", wait)
		}
	}
	if g, _ := joinGrants(claims); kind == actors.ClientWHIP && !g.Publish {
		return newAPIError(http.StatusForbidden, codeForbidden, "publishing needs a token that grants publish")
	}
	var settings *actors.TrackSettings
	if kind == actors.ClientWHEP {
		if settings, err = whepQuerySettings(c.Request.URL.Query()); err != nil {
			return err
		}
	}
	offer, err := readOffer(c)
	if err != nil {
		return err
	}
	// A retry (the same Idempotency-Key, from the same identity) gets the
	// first answer, its session's Location and ETag, and makes no second
	// participant.
	return s.idempotently(c, joinScope(claims), []byte(offer), func() error {
		return s.answerOffer(c, whipOfferRequest{kind: kind, prefix: prefix, room: room, claims: claims, settings: settings, offer: offer})
	})
}

// whipOfferRequest is a WHIP or WHEP POST whose token and body have been
// read.
type whipOfferRequest struct {
	kind     actors.ClientKind
	prefix   string // "whip" or "whep"
	room     actors.RoomID
	claims   *auth.Claims
	settings *actors.TrackSettings // a WHEP viewer's query, or nil
	offer    string
}

// answerOffer joins the room with the offer of a WHIP or WHEP POST and
// answers it.
func (s *Server) answerOffer(c *gin.Context, r whipOfferRequest) error {
	// Checked before joining: a bad offer must not make a participant
	// appear in the room (and start a session) only to leave again.
	// CheckOffer applies the cheap rules (ValidateOffer) first, then tries
	// the offer on a peer connection.
	if err := s.cfg.Rooms.CheckOffer(r.kind, r.offer); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if r.kind == actors.ClientWHEP {
		// Also before joining: a viewer that can receive none of the
		// room's tracks must leave no trace either. A room that cannot
		// be listed is left to Join to report.
		if list, err := s.cfg.Rooms.Participants(ctx, r.room); err == nil {
			if err := actors.CheckWHEPOffer(r.offer, list); err != nil {
				return err
			}
		}
	}
	w := &whipSession{identity: r.claims.Subject, kind: r.kind, live: &s.live}
	p, info, err := s.cfg.Rooms.Join(ctx, r.room, joinRequest(r.claims, r.kind, w))
	if err != nil {
		return err
	}
	answer, err := p.Offer(ctx, r.offer)
	if err == nil && r.settings != nil {
		// Before the client has the answer: no media has gone yet.
		err = p.SetViewerSettings(ctx, *r.settings)
	}
	if err == nil {
		err = w.register(p)
	}
	if err != nil {
		if lerr := p.Leave(ctx, actors.ReasonConnectionFailed); lerr != nil {
			s.log.Warn("leave after a failed offer", "err", lerr)
		}
		return err
	}
	c.Header("Location", "/"+r.prefix+"/"+url.PathEscape(string(r.room))+"/"+url.PathEscape(string(p.ID)))
	c.Header("ETag", `"`+string(p.ID)+`"`)
	addICEServerLinks(c, info.ICEServers)
	c.Data(http.StatusCreated, contentTypeSDP, []byte(answer))
	return nil
}

// whipDelete ends a session. The token must be the session's own identity
// in that room, or an admin token.
func (s *Server) whipDelete(c *gin.Context) error {
	kind, _ := whipKind(c)
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	w, err := s.whipSessionOf(c, kind, claims)
	if err != nil {
		return err
	}
	if err := w.p.Leave(c.Request.Context(), actors.ReasonLeft); err != nil {
		return err
	}
	s.live.removeWHIP(w.p.ID)
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return nil
}

// whipSessionOf returns the session of kind at the request's URL, if the
// token's claims are that session's own identity in its room (or an
// admin's). In a cluster, a session this node does not have may live on
// the node that owns the room: the room's NotOwnerError is returned, and
// the request forwarded there.
func (s *Server) whipSessionOf(c *gin.Context, kind actors.ClientKind, claims *auth.Claims) (*whipSession, error) {
	room := actors.RoomID(c.Param("room"))
	w, ok := s.live.getWHIP(actors.ParticipantID(c.Param("pid")))
	if !ok && s.cfg.Owners != nil {
		var noe *actors.NotOwnerError
		if _, err := s.cfg.Rooms.Participants(c.Request.Context(), room); errors.As(err, &noe) {
			return nil, err
		}
	}
	if !ok || w.kind != kind || w.p.RoomID != room {
		return nil, newAPIError(http.StatusNotFound, codeNotFound, "no such session")
	}
	if !claims.Admin && (actors.RoomID(claims.Room) != w.p.RoomID || claims.Subject != w.identity) {
		return nil, newAPIError(http.StatusForbidden, codeForbidden, "the token is not this session's")
	}
	return w, nil
}

// whipClaims checks the bearer token of a WHIP or WHEP request.
func (s *Server) whipClaims(c *gin.Context) (*auth.Claims, error) {
	token, ok := bearerToken(c.Request)
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="troupe"`)
		return nil, errUnauthorized
	}
	claims, err := s.verify(token)
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="troupe", error="invalid_token"`)
		return nil, err
	}
	if claims.Admin && c.Request.Method == http.MethodDelete {
		return claims, nil
	}
	return claims, checkJoinClaims(claims)
}

// errUnreadableOffer: an offer's body that could not be read.
var errUnreadableOffer = newAPIError(http.StatusBadRequest, codeInvalidSDP, "could not read the offer")

// readOffer reads a WHIP or WHEP POST's body: an SDP offer of at most
// actors.MaxSDPSize bytes.
func readOffer(c *gin.Context) (string, error) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != contentTypeSDP {
		return "", newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type must be application/sdp")
	}
	b, err := readLimited(c, actors.MaxSDPSize, "the offer exceeds %d bytes", errUnreadableOffer)
	if err != nil {
		return "", err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", newAPIError(http.StatusBadRequest, codeEmptyBody, "the body must be an SDP offer")
	}
	c.Set(ctxBody, b) // for forwarding to the room's owner
	return string(b), nil
}

// sessionMethods are the methods a WHIP or WHEP session URL takes besides
// OPTIONS: PATCH (trickle ICE, and a WHEP viewer's settings) and DELETE.
const sessionMethods = "PATCH, DELETE"
