package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// CORS for WHIP and WHEP, so that a browser page on another origin can
// publish or play. Both authenticate with a bearer token that the page
// sends itself, never with cookies, so allowing any origin ("*") lends a
// foreign page nothing it did not already hold; credentialed requests are
// never allowed. The REST API and the WebSocket get no CORS headers.

// corsAllowHeaders are the request headers a WHIP or WHEP client sends:
// its token, the SDP's or the trickle fragment's type, the ETag a PATCH
// names (RFC 9725 section 4.3), and the Idempotency-Key of a POST.
const corsAllowHeaders = "Authorization, Content-Type, If-Match, Idempotency-Key"

// corsExposeHeaders are the response headers a WHIP or WHEP client reads
// beyond the safelisted ones: the session's URL, its ETag, the ICE servers
// (Link), and what it needs to retry (a replayed POST says so) or
// authenticate.
const corsExposeHeaders = "Location, Link, ETag, Accept-Patch, Allow, Retry-After, WWW-Authenticate, Idempotent-Replayed"

// corsMaxAge is how long, in seconds, a browser may reuse a preflight:
// Chromium's cap.
const corsMaxAge = "7200"

// corsPolicy says which origins may call WHIP and WHEP from a browser.
type corsPolicy struct {
	any     bool
	origins map[string]bool // scheme://host[:port], lower case
}

// newCORSPolicy checks origins: each is "*" or an origin such as
// "https://app.example.com" or "http://localhost:5173".
func newCORSPolicy(origins []string) (*corsPolicy, error) {
	p := &corsPolicy{origins: make(map[string]bool)}
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		p.origins[norm] = true
	}
	return p, nil
}

// CheckCORSOrigins reports the first entry of origins that is neither "*"
// nor an origin (scheme://host[:port], no path).
func CheckCORSOrigins(origins []string) error {
	_, err := newCORSPolicy(origins)
	return err
}

func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("CORS origin %q: want * or scheme://host[:port], like https://app.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func (p *corsPolicy) allows(origin string) bool {
	if p.any {
		return true
	}
	return p.origins[strings.ToLower(origin)]
}

// cors adds the CORS response headers to every WHIP and WHEP response,
// errors included, so that a page can read why it was refused.
func (s *Server) cors(c *gin.Context) {
	if !s.corsPolicy.any {
		// The answer depends on the Origin: caches must keep one per origin.
		c.Writer.Header().Add("Vary", "Origin")
	}
	origin := c.GetHeader("Origin")
	if origin == "" || !s.corsPolicy.allows(origin) {
		return
	}
	if s.corsPolicy.any {
		c.Header("Access-Control-Allow-Origin", "*")
	} else {
		c.Header("Access-Control-Allow-Origin", origin)
	}
	c.Header("Access-Control-Expose-Headers", corsExposeHeaders)
}

// whipOptions answers OPTIONS on a WHIP or WHEP endpoint or session: a
// CORS preflight, or a client asking what the URL takes (RFC 9725 allows
// both). methods are the URL's methods.
func (s *Server) whipOptions(methods string) gin.HandlerFunc {
	allow := methods + ", OPTIONS"
	return func(c *gin.Context) {
		if methods == http.MethodPost && s.optionsICEServers(c) {
			return
		}
		c.Header("Allow", allow)
		if c.GetHeader("Access-Control-Request-Method") != "" {
			origin := c.GetHeader("Origin")
			if origin == "" || !s.corsPolicy.allows(origin) {
				s.abort(c, newAPIError(http.StatusForbidden, codeOriginNotAllowed,
					fmt.Sprintf("origin %q may not call this server from a browser", origin)))
				return
			}
			c.Header("Access-Control-Allow-Methods", allow)
			c.Header("Access-Control-Allow-Headers", corsAllowHeaders)
			c.Header("Access-Control-Max-Age", corsMaxAge)
		}
		if methods == http.MethodPost {
			c.Header("Accept-Post", contentTypeSDP)
		}
		if strings.HasPrefix(methods, http.MethodPatch) {
			c.Header("Accept-Patch", acceptPatch(c.FullPath()))
		}
		c.Status(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
	}
}
