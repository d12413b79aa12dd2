package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Pagination of GET /rooms.
const (
	defaultLimit = 20
	maxLimit     = 100
)

func (s *Server) createRoom(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	req, err := decodeCreateRoom(o)
	if err != nil {
		return err
	}
	ctx := c.Request.Context()
	id, derived, generated := req.id, false, false
	if id == "" {
		if key, ok := requestIdempotencyKey(c); ok {
			id, derived = derivedRoomID(apiKey(c), key), true
		} else {
			id, generated = actors.NewRoomID(), true
		}
	}
	info, err := s.cfg.Rooms.Create(ctx, id, req.spec)
	if generated {
		s.forwardRoomID(c, err, id)
	}
	if _, elsewhere := s.forwardable(err, c.Request.Header); elsewhere {
		// Placement chose another node for the new room (or it owns
		// the room): the create goes there.
		if s.forwardOr(c, err, true) {
			return nil
		}
		// That node did not answer, as when placement read a dead
		// node's record: the room is created here, unless a node owns it.
		info, err = s.cfg.Rooms.Create(actors.Forwarded(ctx), id, req.spec)
		if _, other := s.otherOwner(err); other {
			return errOwnerSilent
		}
	}
	if derived && errors.Is(err, actors.ErrRoomExists) {
		// This key created the room before, but its stored response was
		// lost (a crash, or the record expired): answer with the room.
		if info, err = s.cfg.Rooms.Get(ctx, id); err == nil {
			c.Header("Idempotent-Replayed", "true")
		}
	}
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/rooms/"+url.PathEscape(string(id)))
	writeJSON(c, http.StatusCreated, s.ownRoomJSON(c.Request, info))
	return nil
}

// ownRoomJSON is the JSON of a room this node's actor answered for: in a
// cluster, this node owns it, unless it is held failed (its actor stopped).
func (s *Server) ownRoomJSON(r *http.Request, info *actors.RoomInfo) roomJSON {
	out := toRoomJSON(info)
	s.withURLs(r, &out)
	if !info.Failed {
		out.NodeID = s.ownerID()
	}
	return out
}

// ownerID is the node_id of a room this node runs: its id in a cluster,
// null on a single node.
func (s *Server) ownerID() *string {
	if s.cfg.Owners == nil {
		return nil
	}
	id := s.cfg.NodeID
	return &id
}

// addRoomOwners fills in the owners of listed rooms, in a cluster.
func (s *Server) addRoomOwners(ctx context.Context, rooms []roomJSON) error {
	if s.cfg.Owners == nil || len(rooms) == 0 {
		return nil
	}
	ids := make([]string, len(rooms))
	for i, r := range rooms {
		ids[i] = r.ID
	}
	owners, err := s.cfg.Owners.RoomOwners(ctx, ids)
	if err != nil {
		return fmt.Errorf("read the owners of the rooms listed: %w", err)
	}
	for i := range rooms {
		if owner, ok := owners[rooms[i].ID]; ok {
			rooms[i].NodeID = &owner
		}
	}
	return nil
}

func (s *Server) listRooms(c *gin.Context) error {
	var q actors.ListQuery
	query := c.Request.URL.Query()
	var err error
	if q.Limit, q.Offset, err = pageParams(query); err != nil {
		return err
	}
	if query.Has("status") {
		switch query.Get("status") {
		case "active":
			q.Status = recordpb.RoomStatus_ROOM_STATUS_ACTIVE
		case "ended":
			q.Status = recordpb.RoomStatus_ROOM_STATUS_ENDED
		case "failed":
			q.Failed = true
		default:
			return fieldError("status", "must be active, ended or failed")
		}
	}
	rooms, total, err := s.cfg.Rooms.List(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := roomListJSON{Rooms: make([]roomJSON, len(rooms)), Total: total, Limit: q.Limit, Offset: q.Offset}
	for i, r := range rooms {
		out.Rooms[i] = toRoomJSON(r)
		s.withURLs(c.Request, &out.Rooms[i])
	}
	if err := s.addRoomOwners(c.Request.Context(), out.Rooms); err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

// pageParams reads the page of a list: limit (1 to maxLimit, defaultLimit
// if absent) and offset (0 or more).
func pageParams(q url.Values) (limit, offset int, err error) {
	if limit, err = intParam(q, "limit", defaultLimit, 1, maxLimit); err != nil {
		return 0, 0, err
	}
	if offset, err = intParam(q, "offset", 0, 0, -1); err != nil {
		return 0, 0, err
	}
	return limit, offset, nil
}

// intParam parses an integer query parameter: 400 if it is not an integer,
// 422 if it is outside lo..hi (hi < 0: no upper bound).
func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	if !q.Has(name) {
		return def, nil
	}
	v, err := strconv.Atoi(q.Get(name))
	if err != nil {
		return 0, queryError(name, "must be an integer")
	}
	if v < lo || (hi >= 0 && v > hi) {
		if hi < 0 {
			return 0, fieldError(name, "must be at least "+strconv.Itoa(lo))
		}
		return 0, fieldError(name, "must be between "+strconv.Itoa(lo)+" and "+strconv.Itoa(hi))
	}
	return v, nil
}

func (s *Server) getRoom(c *gin.Context) error {
	info, err := s.cfg.Rooms.Get(c.Request.Context(), actors.RoomID(c.Param("id")))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, s.ownRoomJSON(c.Request, info))
	return nil
}

func (s *Server) patchRoom(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	patch, err := decodeRoomPatch(o)
	if err != nil {
		return err
	}
	info, err := s.cfg.Rooms.Update(c.Request.Context(), actors.RoomID(c.Param("id")), patch)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, s.ownRoomJSON(c.Request, info))
	return nil
}

func (s *Server) deleteRoom(c *gin.Context) error {
	if err := s.cfg.Rooms.Delete(c.Request.Context(), actors.RoomID(c.Param("id"))); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}

func (s *Server) endRoom(c *gin.Context) error {
	// No fields are defined; an empty body or {} is accepted.
	o, err := optionalJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	info, err := s.cfg.Rooms.End(c.Request.Context(), actors.RoomID(c.Param("id")))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, s.ownRoomJSON(c.Request, info))
	return nil
}

// Limits of join token requests.
const (
	maxIdentityLen     = 128
	maxParticipantName = 200
	defaultTokenTTL    = time.Hour
	// maxJoinTokenTTL is the longest ttl a join token request may ask
	// for, unless the server's token max lifetime is shorter.
	maxJoinTokenTTL = 24 * time.Hour
)

// maxTokenTTL is the longest a token minted here may live: what the
// Verifier accepts (the server's token max lifetime, its one source),
// and at most maxJoinTokenTTL.
func (s *Server) maxTokenTTL() time.Duration {
	return min(maxJoinTokenTTL, s.cfg.Verifier.MaxLifetime())
}

// tokenTTL is a default ttl cut to maxTokenTTL: the server never mints a
// token it would refuse.
func (s *Server) tokenTTL(ttl time.Duration) time.Duration {
	return auth.CutLifetime(ttl, s.maxTokenTTL())
}

type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

type tokenRequest struct {
	identity, name string
	role           auth.Role
	ttl            time.Duration
	// autoSubscribe is the token's auto_subscribe claim; nil leaves it
	// out (the default, true).
	autoSubscribe *bool
	grants        *auth.Grants
	metadata      string
}

func (s *Server) decodeTokenRequest(o *jsonObject) (tokenRequest, error) {
	req := tokenRequest{role: auth.RolePublisher, ttl: s.tokenTTL(defaultTokenTTL)}
	identity, err := nonNull[string](o, "identity", whatString)
	if err != nil {
		return req, err
	}
	if identity == nil {
		return req, fieldError("identity", "is required")
	}
	if err := checkText("identity", *identity, 1, maxIdentityLen); err != nil {
		return req, err
	}
	req.identity = *identity
	if name, err := nonNull[string](o, "name", whatString); err != nil {
		return req, err
	} else if name != nil {
		if err := checkText("name", *name, 0, maxParticipantName); err != nil {
			return req, err
		}
		req.name = *name
	}
	if role, err := nonNull[string](o, "role", whatString); err != nil {
		return req, err
	} else if role != nil {
		if req.role, err = auth.ParseRole(*role); err != nil {
			return req, fieldError("role", "must be publisher, subscriber or moderator")
		}
	}
	if g, present, null, err := o.object("grants"); err != nil {
		return req, err
	} else if null {
		return req, fieldError("grants", "must not be null")
	} else if present {
		p, err := decodeGrants(g)
		if err != nil {
			return req, err
		}
		if err := actors.GrantsFor(actorRole(req.role), p).Validate(); err != nil {
			return req, err
		}
		req.grants = tokenGrants(p)
	}
	if md, err := decodeMetadata(o); err != nil {
		return req, err
	} else if md != nil {
		req.metadata = *md
	}
	maxTTL := int64(s.maxTokenTTL() / time.Second)
	if ttl, err := nonNull[int64](o, "ttl", whatInt); err != nil {
		return req, err
	} else if ttl != nil {
		if *ttl < 1 || *ttl > maxTTL {
			return req, fieldError("ttl", "must be between 1 and "+strconv.FormatInt(maxTTL, 10)+
				" seconds (at most 24 hours, and no more than the server's token max lifetime)")
		}
		req.ttl = time.Duration(*ttl) * time.Second
	}
	if req.autoSubscribe, err = nonNull[bool](o, "auto_subscribe", whatBool); err != nil {
		return req, err
	}
	return req, o.finish()
}

// tokenGrants is a grants patch as a token carries it.
func tokenGrants(p actors.GrantsPatch) *auth.Grants {
	g := &auth.Grants{Publish: p.Publish, Subscribe: p.Subscribe, PublishData: p.PublishData, Hidden: p.Hidden}
	if p.PublishSources != nil {
		g.PublishSources = make([]string, len(*p.PublishSources))
		for i, s := range *p.PublishSources {
			g.PublishSources[i] = string(s)
		}
	}
	return g
}

// checkText accepts valid UTF-8 without control characters, of lo..hi
// characters, and not only blanks when lo > 0.
func checkText(field, s string, lo, hi int) error {
	if !utf8.ValidString(s) {
		return fieldError(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if n < lo || n > hi || (lo > 0 && strings.TrimSpace(s) == "") {
		return fieldError(field, "must be "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi)+" characters")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fieldError(field, "must not contain control characters")
	}
	return nil
}

// createToken mints a join token for a room that exists and has not ended.
func (s *Server) createToken(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	req, err := s.decodeTokenRequest(o)
	if err != nil {
		return err
	}
	id := c.Param("id")
	info, err := s.cfg.Rooms.Get(c.Request.Context(), actors.RoomID(id))
	if err != nil {
		return err
	}
	if info.Room.GetStatus() == recordpb.RoomStatus_ROOM_STATUS_ENDED {
		return actors.ErrRoomEnded
	}
	// JWT times have whole seconds: expires_at says exactly what exp says.
	now := s.cfg.Clock.Now().Truncate(time.Second)
	claims := auth.JoinClaims(now, req.ttl, id, req.identity, req.name, req.role)
	claims.AutoSubscribe = req.autoSubscribe
	claims.Grants, claims.Metadata = req.grants, req.metadata
	token, err := auth.Mint(s.cfg.SigningKey, claims)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, tokenJSON{Token: token, ExpiresAt: now.Add(req.ttl).UTC()})
	return nil
}
