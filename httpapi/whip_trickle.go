package httpapi

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// Trickle ICE and ICE restarts for WHIP and WHEP sessions (RFC 9725
// section 4.3): a PATCH of the session URL in
// application/trickle-ice-sdpfrag. Its If-Match names the ICE session,
// by the ETag the POST answered (or the last restart did): a PATCH without
// one is a 428, one naming another session a 412. A fragment of the
// session's credentials trickles candidates (204); new credentials
// restart ICE, and the server's new ones come back in a 200 with the new
// session's ETag. The participant applies it (actors.PatchICE); in a
// cluster the PATCH reaches the room's owner as the session's other
// requests do (whipSessionOf).

// errNoIfMatch answers a fragment without If-Match (RFC 9725 section
// 4.3.1, RFC 6585's 428).
var errNoIfMatch = newAPIError(http.StatusPreconditionRequired, codePreconditionRequired,
	`If-Match is required: the session's ETag to trickle candidates, or "*" to restart ICE`)

// errICEFragmentUnreadable answers a fragment whose body could not be read.
var errICEFragmentUnreadable = newAPIError(http.StatusBadRequest, codeInvalidSDP, "could not read the ICE fragment")

// whipPatch serves PATCH on a WHIP or WHEP session: the body's type picks
// what it does. An ICE fragment trickles or restarts ICE (whipTrickle); a
// WHEP viewer's JSON sets what it asks of its video (whepSettings); any
// other type is a 415 once the token and the session are checked.
func (s *Server) whipPatch(c *gin.Context) error {
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	kind, _ := whipKind(c)
	switch {
	case mt == contentTypeTrickleICE:
		return s.whipTrickle(c, kind)
	case kind == actors.ClientWHEP:
		return s.whepSettings(c)
	}
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	if _, err := s.whipSessionOf(c, kind, claims); err != nil {
		return err
	}
	c.Header("Accept-Patch", acceptPatch(c.FullPath()))
	return newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
		"Content-Type must be "+contentTypeTrickleICE+" (trickle ICE or an ICE restart)")
}

// acceptPatch is the Accept-Patch of a session URL under the route path:
// the patch formats it takes.
func acceptPatch(path string) string {
	if strings.HasPrefix(path, "/whep/") {
		return contentTypeJSON + ", " + contentTypeTrickleICE
	}
	return contentTypeTrickleICE
}

// whipTrickle applies an ICE fragment to a session of kind. The token is
// checked first, then the session (404, or the room's owner forwarded
// to: the body is read before, to go with it), then If-Match, then the
// fragment.
func (s *Server) whipTrickle(c *gin.Context, kind actors.ClientKind) error {
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	body, err := readLimited(c, actors.MaxICEFragmentSize,
		fmt.Sprintf("the ICE fragment exceeds %d bytes", actors.MaxICEFragmentSize), errICEFragmentUnreadable)
	if err != nil {
		return err
	}
	c.Set(ctxBody, body) // for forwarding to the room's owner
	w, err := s.whipSessionOf(c, kind, claims)
	if err != nil {
		return err
	}
	tags, err := ifMatchTags(c.Request.Header.Values("If-Match"))
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(body)) == "" {
		return newAPIError(http.StatusBadRequest, codeEmptyBody, "the body must be a trickle ICE SDP fragment")
	}
	res, err := w.p.PatchICE(c.Request.Context(), actors.ICEPatch{Fragment: string(body), IfMatch: tags})
	if err != nil {
		return err
	}
	c.Header("ETag", `"`+res.Tag+`"`)
	if res.Restart == "" {
		c.Status(http.StatusNoContent)
		c.Writer.WriteHeaderNow()
		return nil
	}
	c.Data(http.StatusOK, contentTypeTrickleICE, []byte(res.Restart))
	return nil
}

// ifMatchTags reads the If-Match header's values (RFC 9110 section
// 13.1.1): "*", or a list of entity tags, of which the strong ones are
// returned unquoted. None (or an empty value) is a 428; weak tags alone,
// which never match strongly, a 412; a value that is no entity tag, a 400.
func ifMatchTags(values []string) ([]string, error) {
	if len(values) == 0 {
		return nil, errNoIfMatch
	}
	var tags []string
	weak := false
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if item == "*" {
				tags = append(tags, "*")
				continue
			}
			w := strings.HasPrefix(item, "W/")
			tag := strings.TrimPrefix(item, "W/")
			if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || strings.Contains(tag[1:len(tag)-1], `"`) {
				return nil, newAPIError(http.StatusBadRequest, codeInvalidIfMatch,
					fmt.Sprintf(`If-Match: %q is not an entity tag (a quoted tag, as the ETag header gives it, or "*")`, item))
			}
			if w {
				weak = true
				continue
			}
			tags = append(tags, tag[1:len(tag)-1])
		}
	}
	switch {
	case len(tags) > 0:
	case weak:
		return nil, newAPIError(http.StatusPreconditionFailed, codePreconditionFailed,
			"If-Match names no strong entity tag: a weak one never matches the ICE session")
	default:
		return nil, errNoIfMatch
	}
	return tags, nil
}
