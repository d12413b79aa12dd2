package httpapi

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// This file owns the rooms' links: the url of each room (the page that
// joins it) and POST /rooms/{id}/token, by which the page at a public
// room's link gets a join token for someone who has nothing but the link.

// Defaults of the public join rate, per client address.
const (
	defaultPublicJoinRate  = 0.2 // tokens a second: 12 a minute
	defaultPublicJoinBurst = 5
	// publicJoinKeys bounds the addresses whose buckets are kept.
	publicJoinKeys = 16384
	// publicTokenTTL is the life of a token minted for a public room's
	// link: the page reuses it to join again after a lost connection, and
	// asks for a new one once it has expired. A shorter token max
	// lifetime cuts it.
	publicTokenTTL = time.Hour
	// guestIDLen is the length of the random part of a guest's identity.
	guestIDLen = 12
)

// roomPath is the path of a room's page.
func roomPath(id string) string { return "/rooms/" + url.PathEscape(id) }

// publicBase is the scheme and host of the rooms' links: Config.PublicURL,
// or else the address r came to (its Host, over TLS or not).
func (s *Server) publicBase(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return s.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// roomURL is the link of room id, on base (publicBase).
func roomURL(base, id string) string { return base + roomPath(id) }

// withURLs fills in the url of each room, as seen from r.
func (s *Server) withURLs(r *http.Request, rooms ...*roomJSON) {
	base := s.publicBase(r)
	for _, room := range rooms {
		room.URL = roomURL(base, room.ID)
	}
}

// publicTokenJSON is the answer of POST /rooms/{id}/token.
type publicTokenJSON struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// Identity is the guest identity the token was minted for, and Role
	// the room's default role it carries.
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

// publicToken serves POST /rooms/{id}/token: a join token for anyone, for
// a public room, with the room's default role and a guest identity of its
// own. It is not under /api/v1 and needs no bearer token: the page at a
// room's link calls it. Each client address may ask a few times a minute
// (a request a cluster node forwarded was counted by that node).
func (s *Server) publicToken(c *gin.Context) error {
	ctx := c.Request.Context()
	if !actors.IsForwarded(ctx) {
		if ok, wait := s.publicJoins.allow(s.clientKey(c.Request)); !ok {
			return rateLimited("too many join tokens asked from this address; retry later", wait)
		}
	}
	id := actors.RoomID(c.Param("id"))
	if actors.ValidateRoomID(id) != nil {
		return actors.ErrRoomNotFound
	}
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	name, err := lastOptionalString(o, "name")
	if err != nil {
		return err
	}
	var display string
	if name != nil {
		display = strings.TrimSpace(*name)
		if err := checkText("name", display, 1, maxParticipantName); err != nil {
			return err
		}
	}
	info, err := s.cfg.Rooms.Get(ctx, id)
	if err != nil {
		return err
	}
	switch {
	// A private room is answered as a missing one, ended or not: anyone
	// may call this, and must not learn which private rooms exist.
	case actors.RoomPrivacy(info.Room) != actors.PrivacyPublic:
		return actors.ErrRoomNotFound
	case info.Room.GetStatus() == recordpb.RoomStatus_ROOM_STATUS_ENDED:
		return actors.ErrRoomEnded
	}
	identity := "guest-" + rand.Text()[:guestIDLen]
	role := actors.RoomDefaultRole(info.Room)
	now := s.cfg.Clock.Now().Truncate(time.Second)
	ttl := s.tokenTTL(publicTokenTTL)
	token, err := auth.Mint(s.cfg.SigningKey, auth.JoinClaims(now, ttl, string(id), identity, display, auth.Role(role)))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, publicTokenJSON{Token: token, ExpiresAt: now.Add(ttl).UTC(), Identity: identity, Role: string(role)})
	return nil
}

// checkPublicURL validates a Config.PublicURL and drops its trailing
// slash: an http:// or https:// URL with a host and no path, query or
// fragment (the page's own paths are absolute).
func checkPublicURL(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q: must be an http:// or https:// URL with a host and no path", s)
	}
	return strings.TrimSuffix(s, "/"), nil
}
