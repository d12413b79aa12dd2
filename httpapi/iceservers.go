package httpapi

import (
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// ICE servers for WHIP and WHEP clients, as RFC 9725 section 4.6 has them:
// one Link header per URL, rel="ice-server", with the TURN credentials as
// parameters. They come with the 201 of an offer (minted for the new
// participant) and with an authenticated OPTIONS on the endpoint (minted
// for the token's identity), so that a client can gather relay candidates
// before it offers. A CORS preflight carries no token and gets none.

// addICEServerLinks adds a Link header for each URL of servers.
func addICEServerLinks(c *gin.Context, servers []actors.ICEServer) {
	for _, s := range servers {
		for _, u := range s.URLs {
			c.Writer.Header().Add("Link", iceServerLink(u, s.Username, s.Credential))
		}
	}
}

// iceServerLink is the Link header value of one ICE server URL.
func iceServerLink(url, username, credential string) string {
	var b strings.Builder
	b.WriteString("<" + url + `>; rel="ice-server"`)
	if username != "" || credential != "" {
		b.WriteString(`; username=` + quoteParam(username))
		b.WriteString(`; credential=` + quoteParam(credential))
		b.WriteString(`; credential-type="password"`)
	}
	return b.String()
}

// quoteParam makes s an HTTP quoted-string.
func quoteParam(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// optionsICEServers adds the ICE servers to an OPTIONS on a WHIP or WHEP
// endpoint that carries a join token of the endpoint's room; without one,
// the answer is the same minus the servers, since TURN credentials are
// for participants only. In a cluster the servers are the room owner's,
// whose relays reach its media port alone: a request for a room another
// node owns is forwarded there, and forwarded reports that it was.
func (s *Server) optionsICEServers(c *gin.Context) (forwarded bool) {
	token, ok := bearerToken(c.Request)
	if !ok {
		return false
	}
	claims, err := s.verify(token)
	if err != nil || checkJoinClaims(claims) != nil || claims.Room != c.Param("room") {
		return false
	}
	if s.cfg.Owners != nil {
		_, err := s.cfg.Rooms.Participants(c.Request.Context(), actors.RoomID(claims.Room))
		if err != nil && s.forward(c, err) {
			c.Abort()
			return true
		}
	}
	addICEServerLinks(c, s.cfg.Rooms.ICEServers(claims.Subject))
	c.Header("Cache-Control", "no-store") // credentials
	return false
}
