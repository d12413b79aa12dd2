package httpapi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// Keys of the values middleware leaves on the gin context.
const (
	ctxClaims  = "httpapi.claims"
	ctxBody    = "httpapi.body"
	ctxIdemKey = "httpapi.idempotency_key"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// Connections taken over by their handler (WebSocket upgrades) last as
	// long as their session: they are counted here, not timed in duration,
	// whose percentiles would otherwise be those of the sessions.
	upgraded     *prometheus.CounterVec
	upgradedOpen *prometheus.GaugeVec
}

// durationBuckets are the request latency histogram's buckets, in
// seconds: 0.5 ms up to 10 s, then on in the same 1, 2.5, 5 steps until
// one holds longest, the longest a request waits for its answer (the
// forward timeout, which serve derives from the request timeout: longer
// than 10 s when that is over 3 s). So the slow requests an operator
// looks for land in a bucket, not in +Inf; only a long download may.
func durationBuckets(longest time.Duration) []float64 {
	b := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	for b[len(b)-1] < longest.Seconds() {
		b = append(b, b[len(b)-3]*10) // 10, then 25, 50, 100, 250...
	}
	return b
}

func newHTTPMetrics(reg prometheus.Registerer, longest time.Duration) (*httpMetrics, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "troupe_http_requests_total",
		Help: "HTTP requests served, by route template, method and status code.",
	}, []string{"route", "method", "status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "troupe_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request, by route template and method.",
		Buckets: durationBuckets(longest),
	}, []string{"route", "method"})
	upgraded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "troupe_http_upgraded_connections_total",
		Help: "Connections taken over by their handler (WebSocket upgrades), by route template; their requests are not in troupe_http_request_duration_seconds.",
	}, []string{"route"})
	upgradedOpen := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "troupe_http_upgraded_connections",
		Help: "Connections taken over by their handler (WebSocket upgrades) still open, by route template.",
	}, []string{"route"})
	var err error
	if requests, err = register(reg, requests); err != nil {
		return nil, err
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	if upgraded, err = register(reg, upgraded); err != nil {
		return nil, err
	}
	if upgradedOpen, err = register(reg, upgradedOpen); err != nil {
		return nil, err
	}
	return &httpMetrics{requests: requests, duration: duration, upgraded: upgraded, upgradedOpen: upgradedOpen}, nil
}

// register registers c, or returns the collector already registered under
// its name, so that two servers may share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("httpapi: register metrics: %w", err)
	}
	return c, nil
}

// routeLabel is the route template, never the raw URL, so that the label
// set stays bounded whatever clients ask for.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// methodLabel is the request's method if it is one of HTTP's standard
// methods, else "other": a client may send any token as a method, and the
// label set must stay bounded.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// observe counts and times every request and logs it at debug level. A
// connection its handler takes over is counted apart, while it is open and
// once it is done, and never timed.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	w := &hijackWatch{ResponseWriter: c.Writer, open: s.metrics.upgradedOpen, route: routeLabel(c)}
	c.Writer = w
	c.Next()
	elapsed := time.Since(start)
	route, method, status := routeLabel(c), methodLabel(c.Request.Method), c.Writer.Status()
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	if w.hijacked {
		s.metrics.upgradedOpen.WithLabelValues(w.route).Dec()
		s.metrics.upgraded.WithLabelValues(route).Inc()
	} else {
		s.metrics.duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
	}
	if s.log.Enabled(c.Request.Context(), slog.LevelDebug) {
		s.log.LogAttrs(c.Request.Context(), slog.LevelDebug, "http request",
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.String("path", c.Request.URL.Path),
			slog.Int("status", status),
			slog.Int("bytes", c.Writer.Size()),
			slog.Duration("elapsed", elapsed),
			slog.String("remote", s.clientAddr(c.Request)),
			slog.Bool("upgraded", w.hijacked),
		)
	}
}

// hijackWatch notes that the handler took the connection over, and counts
// it as open from then on. Only the request's goroutine uses it.
type hijackWatch struct {
	gin.ResponseWriter
	open     *prometheus.GaugeVec
	route    string
	hijacked bool
}

func (w *hijackWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := w.ResponseWriter.Hijack()
	if err == nil && !w.hijacked {
		w.hijacked = true
		w.open.WithLabelValues(w.route).Inc()
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *hijackWatch) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recovery turns a panic into a 500 that says nothing of its cause, and
// logs the cause.
func (s *Server) recovery(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			// The handler asked net/http to drop the connection.
			panic(p)
		}
		s.log.Error("panic serving request", "method", c.Request.Method, "route", routeLabel(c),
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		if c.Writer.Written() {
			// Too late for an error body; cut the response short instead.
			c.Abort()
			return
		}
		s.abort(c, newAPIError(http.StatusInternalServerError, codeInternal, "internal error"))
	}()
	c.Next()
}

var errUnauthorized = newAPIError(http.StatusUnauthorized, codeUnauthorized, "a bearer token is required")

// authenticate admits admin tokens only. A valid join token is a known
// caller without the right: 403, not 401.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		c.Header("WWW-Authenticate", `Bearer realm="troupe"`)
		s.abort(c, errUnauthorized)
		return
	}
	claims, err := s.verify(strings.TrimSpace(token))
	if err != nil {
		c.Header("WWW-Authenticate", `Bearer realm="troupe", error="invalid_token"`)
		s.abort(c, err)
		return
	}
	if !claims.Admin || claims.IsJoin() {
		s.abort(c, newAPIError(http.StatusForbidden, codeForbidden, "this token does not grant access to the REST API; an admin token is required"))
		return
	}
	c.Set(ctxClaims, claims)
	c.Next()
}

// verify checks token, through the cache of recently verified tokens.
func (s *Server) verify(token string) (*auth.Claims, error) {
	if c, ok := s.tokens.get(token); ok {
		return c, nil
	}
	c, err := s.cfg.Verifier.Verify(token)
	if err != nil {
		return nil, err
	}
	s.tokens.put(token, c)
	return c, nil
}

// apiKey is the issuer of the request's token: the scope of rate limits and
// idempotency keys.
func apiKey(c *gin.Context) string {
	if v, ok := c.Get(ctxClaims); ok {
		return v.(*auth.Claims).Issuer
	}
	return ""
}

func (s *Server) rateLimit(c *gin.Context) {
	if s.limiter == nil {
		c.Next()
		return
	}
	ok, wait := s.limiter.allow(apiKey(c))
	if !ok {
		s.abort(c, rateLimited("request rate limit exceeded for this API key", wait))
		return
	}
	c.Next()
}

// readBody reads the body of a request that may carry one, within the size
// limit. Handlers and the idempotency layer read it from the context.
func (s *Server) readBody(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		c.Next()
		return
	}
	body, err := readLimited(c, s.cfg.MaxBodyBytes, "request body exceeds %d bytes", errUnreadableBody)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Set(ctxBody, body)
	c.Next()
}

// errUnreadableBody: a JSON body that could not be read (the client went
// away, or sent a broken chunked encoding).
var errUnreadableBody = newAPIError(http.StatusBadRequest, codeMalformedJSON, "could not read the request body")

// readLimited reads the body of c, of at most limit bytes. A larger one,
// by its Content-Length or as it is read, is a 413 body_too_large whose
// message is tooLarge with the limit for its %d; one that cannot be read
// gets unreadable. The body reader of the API and of the routes that read
// their own (a WHIP or WHEP offer, a WHEP viewer's settings), each with
// its limit.
func readLimited(c *gin.Context, limit int64, tooLarge string, unreadable error) ([]byte, error) {
	refuse := func() ([]byte, error) {
		return nil, newAPIError(http.StatusRequestEntityTooLarge, codeBodyTooLarge, fmt.Sprintf(tooLarge, limit))
	}
	if c.Request.ContentLength > limit {
		return refuse()
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse()
		}
		return nil, unreadable
	}
	return body, nil
}

func requestBody(c *gin.Context) []byte {
	if v, ok := c.Get(ctxBody); ok {
		return v.([]byte)
	}
	return nil
}
