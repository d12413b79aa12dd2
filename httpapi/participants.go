package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// participantJSON is a live participant, in the REST API and in the
// signaling messages alike.
type participantJSON struct {
	ID       string            `json:"id"`
	Identity string            `json:"identity"`
	Name     string            `json:"name"`
	Role     string            `json:"role"`
	Grants   actors.GrantsJSON `json:"grants"`
	Metadata string            `json:"metadata"`
	JoinedAt time.Time         `json:"joined_at"`
	Tracks   []trackJSON       `json:"tracks"`
}

type trackJSON struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Codec string `json:"codec"`
	// Source is what the track carries: camera, microphone, screen_share
	// or screen_share_audio.
	Source    string `json:"source"`
	Muted     bool   `json:"muted"`
	Simulcast bool   `json:"simulcast"`
	// Layers lists a simulcast track's layers, lowest first; absent for a
	// track sent as one stream.
	Layers []layerJSON `json:"layers,omitempty"`
}

// layerJSON is one layer of a simulcast track as the server receives it.
// Width and height are 0 until a keyframe gave them (VP8, VP9 with its
// scalability structure, H.264 and AV1 carry them).
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
		Grants: actors.NewGrantsJSON(p.Grants), Metadata: p.Metadata,
		JoinedAt: p.JoinedAt.UTC(), Tracks: make([]trackJSON, len(p.Tracks)),
	}
	for i, t := range p.Tracks {
		out.Tracks[i] = toTrackJSON(t)
	}
	return out
}

func toTrackJSON(t actors.TrackInfo) trackJSON {
	out := trackJSON{ID: string(t.ID), Kind: t.Kind, Codec: t.Codec, Source: string(t.Source), Muted: t.Muted, Simulcast: t.Simulcast}
	for _, l := range t.Layers {
		out.Layers = append(out.Layers, layerJSON{RID: l.RID, Width: l.Width, Height: l.Height, Bitrate: l.Bitrate, Active: l.Active})
	}
	return out
}

// listedParticipantJSON is a participant in the REST list of a room's
// live participants: with what it receives, and whether it speaks.
type listedParticipantJSON struct {
	participantJSON
	Receiving *receivingJSON `json:"receiving"`
	// Speaking: an active speaker now, at AudioLevel (0 to 1, as the
	// active-speakers message gives it; 0 when not speaking).
	Speaking   bool    `json:"speaking"`
	AudioLevel float64 `json:"audio_level"`
}

func toListedParticipantJSON(p actors.ParticipantInfo) listedParticipantJSON {
	return listedParticipantJSON{participantJSON: toParticipantJSON(p), Receiving: toReceivingJSON(p.Receiving),
		Speaking: p.Speaking, AudioLevel: p.AudioLevel}
}

// listParticipants lists the participants the others see: hidden ones
// only with include_hidden=true, for an operator that looks for its
// recorders and observers (to update or remove one).
func (s *Server) listParticipants(c *gin.Context) error {
	includeHidden := false
	switch q := c.Request.URL.Query(); q.Get("include_hidden") {
	case "", "false":
	case "true":
		includeHidden = true
	default:
		return fieldError("include_hidden", "must be true or false")
	}
	list, err := s.cfg.Rooms.Participants(c.Request.Context(), actors.RoomID(c.Param("id")))
	if err != nil {
		return err
	}
	// The body is the array itself (the contract's shape): the list is
	// not paginated, so there is nothing to put beside it.
	out := make([]listedParticipantJSON, 0, len(list))
	for _, p := range list {
		if !p.Grants.Hidden || includeHidden {
			out = append(out, toListedParticipantJSON(p))
		}
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

// patchParticipant changes a live participant's grants (field by field)
// and metadata, and answers with the participant as it is then: what the
// change revoked has stopped (see actors.Rooms.UpdateParticipant).
func (s *Server) patchParticipant(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	var upd actors.ParticipantUpdate
	g, present, null, err := o.object("grants")
	switch {
	case err != nil:
		return err
	case null:
		return fieldError("grants", "must not be null")
	case present:
		p, err := decodeGrants(g)
		if err != nil {
			return err
		}
		upd.Grants = &p
	}
	if upd.Metadata, err = decodeMetadata(o); err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	info, err := s.cfg.Rooms.UpdateParticipant(c.Request.Context(), actors.RoomID(c.Param("id")), actors.ParticipantID(c.Param("pid")), upd)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, toListedParticipantJSON(info))
	return nil
}

// decodeGrants reads a grants object: each field present changes that
// grant; a field it does not know is refused.
func decodeGrants(o *jsonObject) (actors.GrantsPatch, error) {
	var p actors.GrantsPatch
	if err := takeBools(o, []boolField{
		{"publish", &p.Publish},
		{"subscribe", &p.Subscribe},
		{"publish_data", &p.PublishData},
		{"hidden", &p.Hidden},
	}); err != nil {
		return p, err
	}
	names, err := nonNull[[]string](o, "publish_sources", whatStrings)
	if err != nil {
		return p, err
	}
	if names != nil {
		srcs, err := parseSources(o.fieldPath("publish_sources"), *names)
		if err != nil {
			return p, err
		}
		p.PublishSources = &srcs
	}
	return p, o.finish()
}

// parseSources reads a list of track source names.
func parseSources(field string, names []string) ([]actors.TrackSource, error) {
	srcs := make([]actors.TrackSource, 0, len(names))
	for _, n := range names {
		src, ok := actors.ParseTrackSource(n)
		if !ok {
			return nil, fieldError(field, "unknown source "+strconv.Quote(n)+"; the sources are "+sourceList())
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

func sourceList() string {
	var names []string
	for _, s := range actors.TrackSources() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// decodeMetadata reads an optional metadata string (null is refused: the
// empty string clears it).
func decodeMetadata(o *jsonObject) (*string, error) {
	md, err := nonNull[string](o, "metadata", whatString)
	if err != nil || md == nil {
		return nil, err
	}
	if err := actors.ValidateMetadata("metadata", *md); err != nil {
		return nil, err
	}
	return md, nil
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
	muted, err := requiredBool(o, "muted")
	if err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	if err := s.cfg.Rooms.MuteParticipant(c.Request.Context(), actors.RoomID(c.Param("id")), actors.ParticipantID(c.Param("pid")), *kind, muted); err != nil {
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
	if _, err := joinGrants(claims); err != nil {
		return claimRefused(err)
	}
	if err := actors.ValidateMetadata("metadata", claims.Metadata); err != nil {
		return claimRefused(err)
	}
	return nil
}

// claimRefused is the 401 of a join token whose grants or metadata cannot
// be used: its message names the claim and why, as a 422 of the API
// would, so that whoever minted it knows what to fix.
func claimRefused(err error) error {
	if ae, unexpected := toAPIError(err); !unexpected {
		return auth.Refuse("its " + ae.message)
	}
	return auth.Refuse("its grants or metadata cannot be used")
}

// actorRole is the room's word for a token's role.
func actorRole(r auth.Role) actors.Role {
	switch r {
	case auth.RoleModerator:
		return actors.RoleModerator
	case auth.RoleSubscriber:
		return actors.RoleSubscriber
	}
	return actors.RolePublisher
}

// joinGrants are the grants a join token gives: its role's preset,
// changed by the token's own grants.
func joinGrants(claims *auth.Claims) (actors.Grants, error) {
	var p actors.GrantsPatch
	if tg := claims.Grants; tg != nil {
		p = actors.GrantsPatch{Publish: tg.Publish, Subscribe: tg.Subscribe, PublishData: tg.PublishData, Hidden: tg.Hidden}
		if tg.PublishSources != nil {
			srcs, err := parseSources("grants.publish_sources", tg.PublishSources)
			if err != nil {
				return actors.Grants{}, err
			}
			p.PublishSources = &srcs
		}
	}
	g := actors.GrantsFor(actorRole(claims.Role), p)
	return g, g.Validate()
}

// joinRequest turns a join token that checkJoinClaims passed into what the
// room is asked.
func joinRequest(claims *auth.Claims, kind actors.ClientKind, sig actors.Signaler) actors.JoinRequest {
	req := actors.JoinRequest{Identity: claims.Subject, Name: claims.Name, Role: actorRole(claims.Role),
		Metadata: claims.Metadata, Kind: kind, Signal: sig, ManualSubscribe: !claims.Subscribes()}
	g, err := joinGrants(claims)
	if err != nil {
		g = actors.Grants{} // checkJoinClaims refused such a token; if not, nothing is granted
	}
	req.Grants = &g
	return req
}
