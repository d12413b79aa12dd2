package httpapi

import (
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// A WHEP viewer has no signaling channel and names no track: what it asks
// of its video (the size it renders, a maximum quality, a pause) it asks
// of every video track it receives at once, as a signaling client's
// track-settings does of one: in its POST's query (whepQuerySettings), and
// later in a JSON PATCH of its session URL (whepSettings). See
// docs/signaling.md, WHEP.

// maxViewerSettingsBytes bounds the body of a WHEP viewer's PATCH: a few
// small fields.
const maxViewerSettingsBytes = 4096

// whepQueryParams are the query parameters of a WHEP POST.
var whepQueryParams = []string{"height", "max_quality", "width"}

// whepQuerySettings reads what a WHEP viewer asks of its video in its
// POST's query: width and height, max_quality. It returns nil when the
// query asks nothing. A parameter it does not know, given twice, or with
// a bad value fails with a 422 naming it.
func whepQuerySettings(q url.Values) (*actors.TrackSettings, error) {
	if len(q) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names) // the first bad one, the same each time
	var w, h *int
	var quality *string
	for _, name := range names {
		vals := q[name]
		switch {
		case !slices.Contains(whepQueryParams, name):
			return nil, fieldError(name, "unknown query parameter: a WHEP viewer may give width, height and max_quality")
		case len(vals) != 1:
			return nil, fieldError(name, "give it once")
		case name == "max_quality":
			quality = &vals[0]
		default:
			n, err := strconv.Atoi(vals[0])
			if err != nil {
				return nil, fieldError(name, "must be an integer")
			}
			if name == "width" {
				w = &n
			} else {
				h = &n
			}
		}
	}
	st, err := layerSettings(quality, w, h, false)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// whepSettings serves a WHEP viewer's JSON PATCH of its session URL: what
// it asks of every video track it receives, replacing what it asked
// before. Answered 204. The token is checked first, then the session
// (404), then the body's type: any but JSON a 415 (whipPatch has sent a
// trickle ICE fragment to whipTrickle). The body is read
// before the session is looked up: in a cluster the session may be the
// room owner's, and a forwarded request must carry its body to follow an
// owner that moved (forwardOr).
func (s *Server) whepSettings(c *gin.Context) error {
	claims, err := s.whipClaims(c)
	if err != nil {
		return err
	}
	body, err := readLimited(c, maxViewerSettingsBytes, "the settings exceed %d bytes", errUnreadableBody)
	if err != nil {
		return err
	}
	c.Set(ctxBody, body) // for forwarding to the room's owner
	w, err := s.whipSessionOf(c, actors.ClientWHEP, claims)
	if err != nil {
		return err
	}
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != contentTypeJSON {
		c.Header("Accept-Patch", acceptPatch(c.FullPath()))
		return newAPIError(http.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"Content-Type must be application/json (the viewer's settings) or "+contentTypeTrickleICE+" (trickle ICE)")
	}
	o, err := requireJSON(c.Request, body)
	if err != nil {
		return err
	}
	st, err := decodeLayerSettings(o)
	if err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	if err := w.p.SetViewerSettings(c.Request.Context(), st); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	c.Writer.WriteHeaderNow()
	return nil
}
