package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
)

// IdempotencyStore keeps the responses of POSTs made with an
// Idempotency-Key, by scope (the API key) and key. *actors.Idempotency is
// one. Response reports found false for an unknown or expired key.
type IdempotencyStore interface {
	Response(ctx context.Context, scope, key string) (_ *actors.IdempotentResponse, found bool, err error)
	Keep(ctx context.Context, scope, key string, r actors.IdempotentResponse) error
}

// idempotencyHeader is the request header that carries the key; errors
// about the key name it as their field.
const idempotencyHeader = "Idempotency-Key"

// MaxIdempotencyKeyLen is the longest Idempotency-Key accepted.
const MaxIdempotencyKeyLen = 255

// storeTimeout bounds the write of a response record, which outlives the
// client's request context: a client that hangs up still got its side effect.
const storeTimeout = 5 * time.Second

// idempotency serializes the requests that share a key and stores the
// responses that succeeded (2xx). Failures are not stored: a 4xx changed
// nothing and a 5xx may be transient, so a retry runs again.
type idempotency struct {
	store IdempotencyStore
	clock clock.Clock

	mu       sync.Mutex // guards inflight
	inflight map[string]chan struct{}
}

func newIdempotency(store IdempotencyStore, clk clock.Clock) *idempotency {
	return &idempotency{store: store, clock: clk, inflight: map[string]chan struct{}{}}
}

// acquire waits until no other request holds scope/key in this process,
// then holds it until release is called.
func (i *idempotency) acquire(ctx context.Context, scope, key string) (release func(), err error) {
	k := scope + "\x00" + key
	for {
		i.mu.Lock()
		wait, busy := i.inflight[k]
		if !busy {
			done := make(chan struct{})
			i.inflight[k] = done
			i.mu.Unlock()
			return func() {
				i.mu.Lock()
				delete(i.inflight, k)
				i.mu.Unlock()
				close(done)
			}, nil
		}
		i.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// idempotencyKey reads the header: absent is fine, present must be one
// value of 1..255 printable ASCII characters.
func idempotencyKey(h http.Header) (string, bool, error) {
	vals := h.Values(idempotencyHeader)
	if len(vals) == 0 {
		return "", false, nil
	}
	bad := namedError(http.StatusBadRequest, codeInvalidIdempotency, idempotencyHeader,
		"must be one value of 1 to 255 printable ASCII characters")
	if len(vals) > 1 {
		return "", false, bad
	}
	k := vals[0]
	if len(k) == 0 || len(k) > MaxIdempotencyKeyLen {
		return "", false, bad
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "", false, bad
		}
	}
	return k, true, nil
}

// fingerprint identifies a request so that a key reused for a different
// one is caught.
func fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// derivedRoomID is the id of a room created without an id under an
// Idempotency-Key. Being a function of the key, a retry after a crash that
// lost the stored response finds the room it created instead of making a
// second one. It has the shape of actors.NewRoomID.
func derivedRoomID(scope, key string) actors.RoomID {
	sum := sha256.Sum256([]byte("troupe room id\x00" + scope + "\x00" + key))
	return actors.RoomID("room_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:10])))
}

// captureWriter keeps a copy of what the handler writes.
type captureWriter struct {
	gin.ResponseWriter
	buf bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) WriteString(s string) (int, error) {
	w.buf.WriteString(s)
	return w.ResponseWriter.WriteString(s)
}

// idempotent is the Idempotency-Key layer of the /api/v1 group: keys are
// scoped by the API key (the token's issuer).
func (s *Server) idempotent(c *gin.Context) {
	if c.Request.Method != http.MethodPost {
		c.Next()
		return
	}
	if err := s.idempotently(c, apiKey(c), requestBody(c), nextHandler(c)); err != nil {
		s.abort(c, err)
	}
}

// idempotentByAddress is the Idempotency-Key layer of the POSTs that need
// no credential (a public room's join token, the dev token): keys are
// scoped by the client's address, as their rate limit is. A request
// another node forwarded was replayed or kept by that node, which saw the
// client's address.
func (s *Server) idempotentByAddress(c *gin.Context) {
	if actors.IsForwarded(c.Request.Context()) {
		c.Next()
		return
	}
	if err := s.idempotently(c, addressScope(s.clientKey(c.Request)), requestBody(c), nextHandler(c)); err != nil {
		s.abort(c, err)
	}
}

// The scopes of keys that are not the API group's, which is the bare API
// key: NUL, which no configured API key holds, sets them apart.
func joinScope(c *auth.Claims) string      { return "\x00join\x00" + c.Issuer + "\x00" + c.Subject }
func addressScope(clientKey string) string { return "\x00addr\x00" + clientKey }

// nextHandler runs the rest of a middleware's chain as idempotently's run.
func nextHandler(c *gin.Context) func() error {
	return func() error {
		c.Next()
		return nil
	}
}

// idempotently runs run once per scope and Idempotency-Key: it replays the
// stored response of a POST whose key was seen before, and stores the
// response of one that succeeded. An error of run is written within (a
// request for a room another node owns is forwarded there), so that the
// answer that came back is the one kept when it is a success; the error
// idempotently returns is about the key or its store, for the caller to
// write. Without a key, or without a store, it only runs run.
func (s *Server) idempotently(c *gin.Context, scope string, body []byte, run func() error) error {
	if s.idem == nil {
		return run()
	}
	key, ok, err := idempotencyKey(c.Request.Header)
	if err != nil {
		return err
	}
	if !ok {
		return run()
	}
	ctx := c.Request.Context()
	// The query is part of the request where it is read (a WHEP viewer's
	// settings, the dev token's room); a path without one is fingerprinted
	// as before the query was, so that stored records still match.
	target := c.Request.URL.Path
	if q := c.Request.URL.RawQuery; q != "" {
		target += "?" + q
	}
	fp := fingerprint(c.Request.Method, target, body)

	release, err := s.idem.acquire(ctx, scope, key)
	if err != nil {
		return err
	}
	defer release()

	stored, found, err := s.idem.store.Response(ctx, scope, key)
	switch {
	case err != nil:
		return err
	case found:
		if stored.Fingerprint != fp {
			return &apiError{
				status:  http.StatusUnprocessableEntity,
				code:    codeIdempotencyReused,
				message: "this Idempotency-Key was used for a different request",
				details: map[string]any{"field": idempotencyHeader, "idempotency_key": key},
			}
		}
		c.Header("Idempotent-Replayed", "true")
		for _, h := range stored.Headers {
			c.Writer.Header().Add(h.Name, h.Value)
		}
		c.Data(stored.Status, stored.ContentType, stored.Body)
		c.Abort()
		return nil
	}

	c.Set(ctxIdemKey, key)
	cw := &captureWriter{ResponseWriter: c.Writer}
	c.Writer = cw
	if err := run(); err != nil {
		s.abort(c, err)
	}
	c.Writer = cw.ResponseWriter

	status := cw.Status()
	if status < 200 || status > 299 {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	err = s.idem.store.Keep(sctx, scope, key, actors.IdempotentResponse{
		Fingerprint: fp,
		Status:      status,
		ContentType: cw.Header().Get("Content-Type"),
		Body:        cw.buf.Bytes(),
		Headers:     keptHeaders(cw.Header()),
		CreatedAt:   s.idem.clock.Now(),
	})
	if err != nil {
		// The client has its response already; a retry will find what the
		// request did (a created room is found by its derived id).
		s.log.Error("store idempotent response", "route", routeLabel(c), "err", err)
	}
	return nil
}

// replayedHeaders are the headers of a response that a replay repeats:
// where the created thing is (Location), its version (ETag), and a WHIP or
// WHEP session's ICE servers (Link). The rest are the request's own (Date,
// rate limits, CORS...) or are set again by the replay (Content-Type).
var replayedHeaders = []string{"Location", "ETag", "Link"}

// keptHeaders lists the headers of h that a replay repeats, in the order
// of replayedHeaders and each one's values in the order sent.
func keptHeaders(h http.Header) []actors.IdempotentHeader {
	var out []actors.IdempotentHeader
	for _, name := range replayedHeaders {
		for _, v := range h.Values(name) {
			out = append(out, actors.IdempotentHeader{Name: name, Value: v})
		}
	}
	return out
}

// requestIdempotencyKey is the Idempotency-Key of the request, if the
// idempotency layer took it.
func requestIdempotencyKey(c *gin.Context) (string, bool) {
	v, ok := c.Get(ctxIdemKey)
	if !ok {
		return "", false
	}
	return v.(string), true
}
