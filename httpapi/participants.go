package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// participantJSON is a live participant, in the REST API and in the
// signaling messages alike.
type participantJSON struct {
	ID       string      `json:"id"`
	Identity string      `json:"identity"`
	Name     string      `json:"name"`
	Role     string      `json:"role"`
	JoinedAt time.Time   `json:"joined_at"`
	Tracks   []trackJSON `json:"tracks"`
}

type trackJSON struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Codec     string `json:"codec"`
	Muted     bool   `json:"muted"`
	Simulcast bool   `json:"simulcast"`
	// Layers lists a simulcast track's layers, lowest first; absent for a
	// track sent as one stream.
	Layers []layerJSON `json:"layers,omitempty"`
}

// layerJSON is one layer of a simulcast track as the server receives it.
// Width and height are 0 until a keyframe gave them (VP8 and H.264 carry
// them; other codecs do not).
type layerJSON struct {
	RID     string `json:"rid"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Bitrate uint64 `json:"bitrate"`
	Active  bool   `json:"active"`
}

func toParticipantJSON(p actors.ParticipantInfo) participantJSON {
	out := participantJSON{
		ID: string(p.ID), Identity: p.Identity, Name: p.Name, Role: string(p.Role),
		JoinedAt: p.JoinedAt.UTC(), Tracks: make([]trackJSON, len(p.Tracks)),
	}
	for i, t := range p.Tracks {
		out.Tracks[i] = toTrackJSON(t)
	}
	return out
}

func toTrackJSON(t actors.TrackInfo) trackJSON {
	out := trackJSON{ID: string(t.ID), Kind: t.Kind, Codec: t.Codec, Muted: t.Muted, Simulcast: t.Simulcast}
	for _, l := range t.Layers {
		out.Layers = append(out.Layers, layerJSON{RID: l.RID, Width: l.Width, Height: l.Height, Bitrate: l.Bitrate, Active: l.Active})
	}
	return out
}

// participantListJSON wraps the list in an object, like every other list
// of the API, so that fields can be added beside it.
type participantListJSON struct {
	Participants []listedParticipantJSON `json:"participants"`
}

// listedParticipantJSON is a participant in the REST list of a room's
// live participants: with what it receives.
type listedParticipantJSON struct {
	participantJSON
	Receiving *receivingJSON `json:"receiving"`
}

func (s *Server) listParticipants(c *gin.Context) error {
	list, err := s.cfg.Rooms.Participants(c.Request.Context(), actors.RoomID(c.Param("id")))
	if err != nil {
		return err
	}
	out := participantListJSON{Participants: make([]listedParticipantJSON, len(list))}
	for i, p := range list {
		out.Participants[i] = listedParticipantJSON{participantJSON: toParticipantJSON(p), Receiving: toReceivingJSON(p.Receiving)}
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

func (s *Server) kickParticipant(c *gin.Context) error {
	if err := s.cfg.Rooms.Kick(c.Request.Context(), actors.RoomID(c.Param("id")), actors.ParticipantID(c.Param("pid"))); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}

// muteParticipant answers 204 once the room has taken the order; the
// participant's tracks stop being forwarded as soon as its actor applies it,
// and everyone in the room is sent a mute message.
func (s *Server) muteParticipant(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	kind, err := nonNull[string](o, "kind", whatString)
	if err != nil {
		return err
	}
	if kind == nil {
		return fieldError("kind", "is required")
	}
	if *kind != "audio" && *kind != "video" {
		return fieldError("kind", "must be audio or video")
	}
	muted, err := nonNull[bool](o, "muted", whatBool)
	if err != nil {
		return err
	}
	if muted == nil {
		return fieldError("muted", "is required")
	}
	if err := o.finish(); err != nil {
		return err
	}
	if err := s.cfg.Rooms.MuteParticipant(c.Request.Context(), actors.RoomID(c.Param("id")), actors.ParticipantID(c.Param("pid")), *kind, *muted); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}

// bearerToken returns the token of an Authorization: Bearer header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

var errNotJoinToken = newAPIError(http.StatusForbidden, codeForbidden, "a join token is required")

// joinClaims verifies a join token: 401 if it is not a valid token, 403 if
// it is valid but not a join token.
func (s *Server) joinClaims(token string) (*auth.Claims, error) {
	claims, err := s.verify(token)
	if err != nil {
		return nil, err
	}
	return claims, checkJoinClaims(claims)
}

func checkJoinClaims(claims *auth.Claims) error {
	if !claims.IsJoin() {
		return errNotJoinToken
	}
	if _, err := auth.ParseRole(string(claims.Role)); err != nil {
		return errNotJoinToken
	}
	return nil
}

// joinRequest turns a join token into what the room is asked.
func joinRequest(claims *auth.Claims, kind actors.ClientKind, sig actors.Signaler) actors.JoinRequest {
	var role actors.Role
	switch claims.Role {
	case auth.RoleModerator:
		role = actors.RoleModerator
	case auth.RoleSubscriber:
		role = actors.RoleSubscriber
	default:
		role = actors.RolePublisher
	}
	return actors.JoinRequest{Identity: claims.Subject, Name: claims.Name, Role: role, Kind: kind, Signal: sig,
		ManualSubscribe: !claims.Subscribes()}
}
