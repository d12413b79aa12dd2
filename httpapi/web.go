package httpapi

import (
	"bytes"
	"embed"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/httpapi/auth"
)

// The web page: plain HTML and JavaScript, no build step, nothing fetched
// from elsewhere.
//
//go:embed web/index.html web/app.js web/app.css web/favicon.ico
var webFiles embed.FS

// webPage returns the page with its mode filled in: whether it may ask
// POST /dev/token for a join token.
func webPage(dev bool) []byte {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		panic("httpapi: embedded page: " + err.Error())
	}
	mode := "token"
	if dev {
		mode = "dev"
	}
	return bytes.ReplaceAll(page, []byte("{{TOKEN_MODE}}"), []byte(mode))
}

// pageCSP keeps the page to its own scripts and the server it came from:
// it talks only to its own origin ('self' covers its ws: or wss: /rtc),
// and no other page may frame it (clickjacking its camera and microphone).
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// webHeaders are set on the page and its files: browsers take each as the
// type it is served as, and the page's URL, which holds the room's name and
// may hold a token, is never sent on as a Referer.
func webHeaders(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "no-referrer")
}

func (s *Server) servePage(c *gin.Context) {
	webHeaders(c)
	c.Header("Content-Security-Policy", pageCSP)
	c.Header("X-Frame-Options", "DENY") // frame-ancestors, for browsers without it
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, "text/html; charset=utf-8", s.page)
}

// serveFile serves the embedded web/name as contentType. The script and
// the style sheet change with each version: no-cache has browsers check;
// the icon, which browsers also ask for on their own, is kept a day.
func serveFile(name, contentType, cacheControl string) gin.HandlerFunc {
	b, err := webFiles.ReadFile("web/" + name)
	if err != nil {
		panic("httpapi: embedded " + name + ": " + err.Error())
	}
	return func(c *gin.Context) {
		webHeaders(c)
		c.Header("Cache-Control", cacheControl)
		c.Data(http.StatusOK, contentType, b)
	}
}

// devTokenTTL is the life of a token from POST /dev/token, unless the
// token max lifetime is shorter.
const devTokenTTL = time.Hour

// devTokensOn makes POST /dev/token an unknown route, before anything else
// reads the request, unless the server runs with Config.DevJoinTokens.
func (s *Server) devTokensOn(c *gin.Context) {
	if !s.cfg.DevJoinTokens {
		s.abort(c, newAPIError(http.StatusNotFound, codeNotFound, "no such route"))
		return
	}
	c.Next()
}

// devToken serves POST /dev/token?room=&identity=[&name=] (behind
// devTokensOn). It creates the room if it does not exist and mints a
// publisher token.
func (s *Server) devToken(c *gin.Context) error {
	q := c.Request.URL.Query()
	room, identity, name := q.Get("room"), q.Get("identity"), q.Get("name")
	if err := actors.ValidateRoomID(actors.RoomID(room)); err != nil {
		return queryError("room", "must be 1 to 64 letters, digits, _ or -")
	}
	if err := checkText("identity", identity, 1, maxIdentityLen); err != nil {
		return err
	}
	if err := checkText("name", name, 0, maxParticipantName); err != nil {
		return err
	}
	ctx := c.Request.Context()
	if _, err := s.cfg.Rooms.Get(ctx, actors.RoomID(room)); errors.Is(err, actors.ErrRoomNotFound) {
		_, err = s.cfg.Rooms.Create(ctx, actors.RoomID(room), &actorpb.RoomPatch{Name: &room})
		if err != nil && !errors.Is(err, actors.ErrRoomExists) {
			return err
		}
	} else if err != nil {
		return err
	}
	now := s.cfg.Clock.Now().Truncate(time.Second)
	ttl := s.tokenTTL(devTokenTTL)
	token, err := auth.Mint(s.cfg.SigningKey, auth.JoinClaims(now, ttl, room, identity, name, auth.RolePublisher))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, tokenJSON{Token: token, ExpiresAt: now.Add(ttl).UTC()})
	return nil
}
