package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/pion/sdp/v3"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// maxOfferBytes bounds a WHIP or WHEP offer, as the actors do.
const maxOfferBytes = 64 << 10

const contentTypeSDP = "application/sdp"

// whipSession is a WHIP or WHEP client's stay in a room, from its POST to
// its DELETE. It is its participant's Signaler only to learn when the room
// removes it (kick, end); WHIP and WHEP have no channel for the room's
// events.
type whipSession struct {
	p        *actors.Participant
	identity string
	kind     actors.ClientKind
	live     *liveSessions
}

func (w *whipSession) Signal(actors.Signal) {}

func (w *whipSession) Close(string) { w.live.removeWHIP(w.p.ID) }

// whipKind tells WHIP (publish) from WHEP (subscribe) by the route.
func whipKind(c *gin.Context) (actors.ClientKind, string) {
	if strings.HasPrefix(c.FullPath(), "/whep/") {
		return actors.ClientWHEP, "whep"
	}
	return actors.ClientWHIP, "whip"
}

// whipOffer serves POST /whip/{room} and POST /whep/{room} (RFC 9725 and
// the WHEP draft): the body is the client's offer; the answer carries every
// server candidate, so the client need not trickle.
func (s *Server) whipOffer(c *gin.Context) error {
	kind, prefix := whipKind(c)
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	room := c.Param("room")
	if claims.Room != room {
		return newAPIError(http.StatusForbidden, codeForbidden, "the token is for another room")
	}
	if kind == actors.ClientWHIP && claims.Role != auth.RolePublisher && claims.Role != auth.RoleModerator {
		return newAPIError(http.StatusForbidden, codeForbidden, "publishing needs a publisher or moderator token")
	}
	offer, err := readOffer(c)
	if err != nil {
		return err
	}
	// Checked before joining: a bad offer must not make a participant
	// appear in the room (and start a session) only to leave again.
	if err := validateOffer(kind, offer); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if kind == actors.ClientWHEP {
		// Also before joining: a viewer that can receive none of the
		// room's tracks must leave no trace either. A room that cannot
		// be listed is left to Join to report.
		if list, err := s.cfg.Rooms.Participants(ctx, room); err == nil {
			if err := actors.CheckWHEPOffer(offer, list); err != nil {
				return err
			}
		}
	}
	w := &whipSession{identity: claims.Subject, kind: kind, live: &s.live}
	p, _, err := s.cfg.Rooms.Join(ctx, room, joinRequest(claims, kind, w))
	if err != nil {
		return err
	}
	w.p = p
	answer, err := p.Offer(ctx, offer)
	if err == nil && !s.live.addWHIP(w) {
		err = newAPIError(http.StatusServiceUnavailable, codeNotReady, "the server is shutting down")
	}
	if err != nil {
		if lerr := p.Leave(ctx, actors.ReasonConnectionFailed); lerr != nil {
			s.log.Warn("leave after a failed offer", "err", lerr)
		}
		return err
	}
	c.Header("Location", "/"+prefix+"/"+url.PathEscape(room)+"/"+url.PathEscape(p.ID))
	c.Header("ETag", `"`+p.ID+`"`)
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
	w, ok := s.live.getWHIP(c.Param("pid"))
	if !ok || w.kind != kind || w.p.RoomID != c.Param("room") {
		return newAPIError(http.StatusNotFound, codeNotFound, "no such session")
	}
	if !claims.Admin && (claims.Room != w.p.RoomID || claims.Subject != w.identity) {
		return newAPIError(http.StatusForbidden, codeForbidden, "the token is not this session's")
	}
	if err := w.p.Leave(c.Request.Context(), actors.ReasonLeft); err != nil {
		return err
	}
	s.live.removeWHIP(w.p.ID)
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	return nil
}

// whipPatch answers PATCH on a session: trickle ICE and ICE restarts are
// not offered (RFC 9725 section 4.3.1 allows a 405). The answer already
// holds every server candidate; a client sends its own in the offer.
func (s *Server) whipPatch(c *gin.Context) {
	c.Header("Allow", "DELETE")
	s.abort(c, newAPIError(http.StatusMethodNotAllowed, codeMethodNotAllowed,
		"trickle ICE is not supported: put every candidate in the offer"))
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

func readOffer(c *gin.Context) (string, error) {
	mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil || mt != contentTypeSDP {
		return "", newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType, "Content-Type must be application/sdp")
	}
	tooLarge := newAPIError(http.StatusRequestEntityTooLarge, codeBodyTooLarge,
		fmt.Sprintf("the offer exceeds %d bytes", maxOfferBytes))
	if c.Request.ContentLength > maxOfferBytes {
		return "", tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxOfferBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", tooLarge
		}
		return "", newAPIError(http.StatusBadRequest, codeInvalidSDP, "could not read the offer")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", newAPIError(http.StatusBadRequest, codeEmptyBody, "the body must be an SDP offer")
	}
	return string(b), nil
}

// maxOfferMedia bounds the media sections of a WHIP or WHEP offer.
const maxOfferMedia = 16

// validateOffer checks that offer parses as SDP and asks for what the
// route does: WHIP media sends, WHEP media receives.
func validateOffer(kind actors.ClientKind, offer string) error {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return sdpError("the offer is not valid SDP: %v", err)
	}
	media := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		if media++; media > maxOfferMedia {
			return sdpError("the offer has more than %d audio and video sections", maxOfferMedia)
		}
		dir := "sendrecv"
		for _, a := range m.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				dir = a.Key
			}
		}
		switch {
		case kind == actors.ClientWHIP && (dir == "recvonly" || dir == "inactive"):
			return sdpError("a WHIP offer's %s section must send (sendonly), not %s", m.MediaName.Media, dir)
		case kind == actors.ClientWHEP && dir != "recvonly":
			return sdpError("a WHEP offer's %s section must be recvonly, not %s", m.MediaName.Media, dir)
		}
	}
	if media == 0 {
		return sdpError("the offer has no audio or video section")
	}
	return nil
}

func sdpError(format string, args ...any) error {
	return newAPIError(http.StatusBadRequest, codeInvalidSDP, fmt.Sprintf(format, args...))
}
