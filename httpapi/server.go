package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// RoomService is what the API needs of the room actors; *actors.Rooms
// implements it.
type RoomService interface {
	Create(ctx context.Context, id actors.RoomID, spec *actorpb.RoomPatch) (*actors.RoomInfo, error)
	Get(ctx context.Context, id actors.RoomID) (*actors.RoomInfo, error)
	Update(ctx context.Context, id actors.RoomID, patch *actorpb.RoomPatch) (*actors.RoomInfo, error)
	Delete(ctx context.Context, id actors.RoomID) error
	End(ctx context.Context, id actors.RoomID) (*actors.RoomInfo, error)
	List(ctx context.Context, q actors.ListQuery) ([]*actors.RoomInfo, int, error)

	// The live participants: joining (WebSocket, WHIP, WHEP) and the
	// participants routes.
	Join(ctx context.Context, roomID actors.RoomID, req actors.JoinRequest) (*actors.Participant, *actors.JoinInfo, error)
	// CheckOffer refuses a WHIP or WHEP offer before its join.
	CheckOffer(kind actors.ClientKind, offer string) error
	Participants(ctx context.Context, roomID actors.RoomID) ([]actors.ParticipantInfo, error)
	// ICEServers are the STUN and TURN servers of a client about to
	// join, with TURN credentials of its own.
	ICEServers(user string) []actors.ICEServer
	Kick(ctx context.Context, roomID actors.RoomID, participantID actors.ParticipantID) error
	MuteParticipant(ctx context.Context, roomID actors.RoomID, participantID actors.ParticipantID, kind string, muted bool) error
	// UpdateParticipant changes a live participant's grants and metadata.
	UpdateParticipant(ctx context.Context, roomID actors.RoomID, participantID actors.ParticipantID, upd actors.ParticipantUpdate) (actors.ParticipantInfo, error)
	// SendData sends a data message from the server to a room's participants.
	SendData(ctx context.Context, roomID actors.RoomID, msg actors.DataMessage) (int, error)
	// SendChat sends a chat message from the server; SessionChat reads a
	// session's chat.
	SendChat(ctx context.Context, roomID actors.RoomID, name, text string) (actors.ChatMessage, error)
	SessionChat(ctx context.Context, id actors.SessionID, limit, offset int) ([]actors.ChatMessage, int, error)

	// Session history, live session stats and ending a session.
	Sessions(ctx context.Context, q actors.SessionQuery) ([]*recordpb.Session, int, error)
	Session(ctx context.Context, id actors.SessionID) (*recordpb.Session, error)
	SessionParticipants(ctx context.Context, id actors.SessionID) ([]*recordpb.SessionMember, error)
	SessionStats(ctx context.Context, id actors.SessionID) ([]actors.ParticipantStats, error)
	EndSession(ctx context.Context, id actors.SessionID) (*recordpb.Session, error)

	// WebhookDeliveries lists the webhook outbox and the failed deliveries.
	WebhookDeliveries(ctx context.Context, q actors.DeliveryQuery) ([]*recordpb.WebhookEvent, int, error)

	// Recordings: start, stop, read, find a file, delete.
	StartRecording(ctx context.Context, id actors.RoomID, opts actors.RecordingOptions) (*recordpb.Recording, error)
	StopRecording(ctx context.Context, id actors.RecordingID) (*recordpb.Recording, error)
	Recordings(ctx context.Context, q actors.RecordingQuery) ([]*recordpb.Recording, int, error)
	CurrentRecording(ctx context.Context, id actors.RecordingID) (*recordpb.Recording, error)
	RecordingFile(ctx context.Context, id actors.RecordingID, name string) (*actors.RecordingFile, error)
	DeleteRecording(ctx context.Context, id actors.RecordingID) (*recordpb.Recording, error)
	RemoveDeletedRecordingFiles(ctx context.Context, id actors.RecordingID) error
}

// DefaultMaxBodyBytes is the request body limit when Config.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Config configures a Server. Rooms, Verifier and SigningKey are required;
// every other zero value is a working default.
type Config struct {
	// Rooms serves every room operation.
	Rooms RoomService
	// Verifier checks the bearer tokens of /api/v1.
	Verifier *auth.Verifier
	// SigningKey signs the join tokens minted by POST /rooms/{id}/tokens.
	SigningKey auth.Key
	// Idempotency stores the responses of POSTs sent with an
	// Idempotency-Key. nil disables idempotency: the header is ignored.
	Idempotency IdempotencyStore
	// Logger receives errors at error level and one line per request at
	// debug level. nil discards.
	Logger *slog.Logger
	// Registry receives the HTTP metrics and is what /metrics serves. nil
	// uses a private registry.
	Registry *prometheus.Registry
	// MetricsElsewhere leaves GET /metrics off the API's routes (404):
	// the process serves MetricsHandler on a listener of its own, one
	// that only its scrapers reach. false serves it on the API.
	MetricsElsewhere bool
	// Ready backs /readyz: nil means always ready. The answer of a
	// NotReadyError names its Reason; any other error only says not ready.
	Ready func(context.Context) error
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// RateLimit is the sustained requests per second allowed per API key
	// (token issuer), with bursts of RateBurst (0 means max(1, RateLimit)).
	// 0 turns rate limiting off.
	RateLimit float64
	RateBurst int
	// Clock gives the time of rate limits, the token cache, minted tokens'
	// expiry and idempotency records; nil means clock.System.
	Clock clock.Clock

	// DevJoinTokens serves POST /dev/token, which hands anyone a join token
	// (creating the room if needed), so that the web page works on a local
	// server without an admin token. Never set it on a server others reach.
	DevJoinTokens bool
	// SignalingPingInterval is how often a signaling socket is pinged. A
	// ping unanswered within the interval, or no frame at all from the
	// client for two intervals, closes the socket. 0 means 15s.
	SignalingPingInterval time.Duration
	// CORSOrigins are the origins whose browser pages may call WHIP and
	// WHEP: "*" for any, or origins like "https://app.example.com". nil
	// sends no CORS headers, so only pages of the server's own origin can.
	CORSOrigins []string
	// Nodes backs GET /api/v1/cluster/nodes; nil lists no node.
	Nodes NodeLister
	// Drain backs POST /api/v1/cluster/nodes/{id}/drain for this node: it
	// starts the node's drain and returns. nil: this node cannot be
	// drained through the API (503).
	Drain func()
	// Owners finds the other nodes of a cluster: a request for a room
	// another node owns is forwarded to that node (forward.go). nil on a
	// single node, which owns every room.
	Owners OwnerLocator
	// NodeID is this node's id in the cluster, sent in the
	// Troupe-Forwarded-By header of the requests it forwards.
	NodeID string
	// ForwardTimeout bounds how long a request forwarded to the owner of
	// its room waits for the owner's answer to begin (its status line and
	// headers; a WebSocket's 101). An owner that does not answer in time
	// (frozen, or cut off) gets the caller a 503 room_unavailable with
	// Retry-After, instead of a request that hangs. 0 means 10s.
	ForwardTimeout time.Duration
	// PublicURL is the scheme, host and port of the rooms' links (a room's
	// url is PublicURL/rooms/{id}), like "https://meet.example.com". Empty:
	// the address each request came to.
	PublicURL string
	// PublicJoinRate is the sustained join tokens a second that one client
	// address may get for public rooms (POST /rooms/{id}/token), with
	// bursts of PublicJoinBurst. 0 means 0.2 (12 a minute), bursts of 5.
	PublicJoinRate  float64
	PublicJoinBurst int
	// WHIPRate is the sustained WHIP and WHEP offers a second (POST
	// /whip/{room} and /whep/{room}) that one client address, and one
	// token identity of a room, may make, with bursts of WHIPBurst (0 means max(1, WHIPRate)): each offer is
	// tried on a peer connection and a join writes the session's history,
	// so a client must not churn them without end. Over it: 429 with
	// Retry-After. 0 turns the limit off.
	WHIPRate  float64
	WHIPBurst int
	// SignalingQueue bounds the messages waiting to be written to one
	// signaling socket; a client that lets it fill is dropped. 0 means 256.
	SignalingQueue int
	// SignalingRate is the sustained messages a second one signaling
	// socket may send, with bursts of SignalingBurst: a message beyond it
	// is refused (rate_limited), and a run of refusals closes the socket
	// (1008), so that a flooding client cannot make the room flood the
	// others. 0 means 20 a second, bursts of 40.
	SignalingRate  float64
	SignalingBurst int
	// SignalingPending caps the signaling sockets opened without a token
	// still waiting for their join message, in all, and
	// SignalingPendingPerAddr those from one client address: one more is
	// refused before the upgrade (503 signaling_busy, 429 rate_limited).
	// 0 means 1024, and 16 per address.
	SignalingPending        int
	SignalingPendingPerAddr int
	// TrustedProxies lists the reverse proxies in front of the server, as
	// IP addresses and CIDR networks (ParseTrustedProxies). A request whose
	// peer is one of them is counted under the client address its
	// X-Forwarded-For or Forwarded header names (clientAddr); any other
	// request under its peer's, its headers ignored. nil trusts none; a
	// list that holds every address is refused.
	TrustedProxies []string
	// TrustedProxyHeader names the one header the trusted proxies write
	// the client's address in: ProxyHeaderXForwardedFor (the default,
	// also "") or ProxyHeaderForwarded. The other is never read, as a
	// proxy passes on what the client sent in it.
	TrustedProxyHeader string
}

// limitDefaults fills in the defaults of a limit's two Config fields (a
// rate and its burst, say) where they are 0; a negative one is an error.
func limitDefaults[A, B int | float64](nameA string, a *A, defA A, nameB string, b *B, defB B) error {
	if *a < 0 || *b < 0 {
		return fmt.Errorf("httpapi: Config.%s and %s must not be negative", nameA, nameB)
	}
	if *a == 0 {
		*a = defA
	}
	if *b == 0 {
		*b = defB
	}
	return nil
}

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg     Config
	engine  *gin.Engine
	log     *slog.Logger
	metrics *httpMetrics
	limiter *rateLimiter
	// publicJoins limits POST /rooms/{id}/token per client address.
	publicJoins *rateLimiter
	// whipOffers limits WHIP and WHEP POSTs per client address; nil: no
	// limit.
	whipOffers *rateLimiter
	// proxies are the peers whose forwarding header names the client:
	// Forwarded if proxyFwd, else X-Forwarded-For.
	proxies  trustedProxies
	proxyFwd bool

	tokens *tokenCache
	idem   *idempotency
	page   []byte // the web page, with its mode filled in

	corsPolicy *corsPolicy // who may call WHIP and WHEP from a browser

	pending   *pendingJoins   // tokenless signaling sockets before their join
	ready     readiness       // what /readyz last answered, logged once per change
	live      liveSessions    // signaling sockets and WHIP/WHEP sessions
	forwarder *http.Transport // to the other nodes of a cluster
	// forwardKey signs and checks the requests nodes forward to each
	// other (forwardauth.go); forwardRefused counts the unsigned ones.
	forwardKey     []byte
	forwardRefused prometheus.Counter
}

// New validates cfg, fills its defaults and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Rooms == nil {
		return nil, errors.New("httpapi: Config.Rooms is required")
	}
	if cfg.Verifier == nil {
		return nil, errors.New("httpapi: Config.Verifier is required")
	}
	if err := cfg.SigningKey.Validate(); err != nil {
		return nil, fmt.Errorf("httpapi: Config.SigningKey: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RateLimit < 0 {
		return nil, errors.New("httpapi: Config.RateLimit must not be negative")
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = max(1, int(cfg.RateLimit))
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.SignalingPingInterval <= 0 {
		cfg.SignalingPingInterval = defaultPingInterval
	}
	if cfg.SignalingQueue <= 0 {
		cfg.SignalingQueue = defaultSignalingQueue
	}
	if err := limitDefaults("SignalingRate", &cfg.SignalingRate, defaultSignalingRate, "SignalingBurst", &cfg.SignalingBurst, defaultSignalingBurst); err != nil {
		return nil, err
	}
	if err := limitDefaults("SignalingPending", &cfg.SignalingPending, defaultSignalingPending, "SignalingPendingPerAddr", &cfg.SignalingPendingPerAddr, defaultSignalingPendingPerAddr); err != nil {
		return nil, err
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = defaultForwardTimeout
	}
	if cfg.WHIPRate < 0 || cfg.WHIPBurst < 0 {
		return nil, errors.New("httpapi: Config.WHIPRate and WHIPBurst must not be negative")
	}
	if cfg.WHIPBurst == 0 {
		cfg.WHIPBurst = max(1, int(cfg.WHIPRate))
	}
	if err := limitDefaults("PublicJoinRate", &cfg.PublicJoinRate, defaultPublicJoinRate, "PublicJoinBurst", &cfg.PublicJoinBurst, defaultPublicJoinBurst); err != nil {
		return nil, err
	}
	publicURL, err := checkPublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("httpapi: Config.PublicURL: %w", err)
	}
	cfg.PublicURL = publicURL
	proxies, err := ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("httpapi: Config.TrustedProxies: %w", err)
	}
	proxyHeader, err := parseProxyHeader(cfg.TrustedProxyHeader)
	if err != nil {
		return nil, fmt.Errorf("httpapi: Config.TrustedProxyHeader: %w", err)
	}
	cors, err := newCORSPolicy(cfg.CORSOrigins)
	if err != nil {
		return nil, fmt.Errorf("httpapi: Config.CORSOrigins: %w", err)
	}
	// A forwarded request waits up to ForwardTimeout for its owner, which
	// also outlasts the slowest answer of a room actor here.
	m, err := newHTTPMetrics(cfg.Registry, cfg.ForwardTimeout)
	if err != nil {
		return nil, err
	}
	forwardRefused, err := newForwardRefused(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "httpapi"),
		metrics: m,
		tokens:  newTokenCache(tokenCacheSize, cfg.Clock),

		forwarder:      newForwardTransport(cfg.ForwardTimeout),
		forwardKey:     forwardKey(cfg.SigningKey),
		forwardRefused: forwardRefused,

		corsPolicy: cors,
		proxies:    proxies,
		proxyFwd:   proxyHeader == ProxyHeaderForwarded,
	}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.Clock)
	}
	s.publicJoins = newRateLimiter(cfg.PublicJoinRate, cfg.PublicJoinBurst, cfg.Clock)
	s.publicJoins.maxKeys = publicJoinKeys
	if cfg.WHIPRate > 0 {
		s.whipOffers = newRateLimiter(cfg.WHIPRate, cfg.WHIPBurst, cfg.Clock)
		s.whipOffers.maxKeys = publicJoinKeys
	}
	if cfg.Idempotency != nil {
		s.idem = newIdempotency(cfg.Idempotency, cfg.Clock)
	}
	s.pending = newPendingJoins(cfg.SignalingPending, cfg.SignalingPendingPerAddr)
	s.live.init()
	s.page = webPage(cfg.DevJoinTokens)
	s.engine = s.routes()
	return s, nil
}

// MetricsHandler serves reg's metrics in Prometheus's text format: GET
// /metrics of the API, or of a listener of its own (Config.MetricsElsewhere).
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// An API answers the path it was asked, with a JSON error if unknown.
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	// gin's ClientIP reads no header then; the client's address is
	// clientAddr's, which knows Config.TrustedProxies.
	_ = e.SetTrustedProxies(nil)
	// observe is outermost so that a recovered panic is counted and logged as a 500.
	e.Use(s.observe, s.recovery, s.forwardedHere)
	e.NoRoute(func(c *gin.Context) {
		s.abort(c, newAPIError(http.StatusNotFound, codeNotFound, "no such route"))
	})
	e.NoMethod(func(c *gin.Context) {
		s.abort(c, newAPIError(http.StatusMethodNotAllowed, codeMethodNotAllowed, "method not allowed on this route"))
	})

	healthz := func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) }
	e.GET("/healthz", healthz)
	e.GET("/readyz", s.readyz)
	// Probes that send HEAD get GET's answer; net/http sends no body.
	e.HEAD("/healthz", healthz)
	e.HEAD("/readyz", s.readyz)
	if !s.cfg.MetricsElsewhere {
		e.GET("/metrics", gin.WrapH(MetricsHandler(s.cfg.Registry)))
	}
	e.GET("/api/v1/openapi.json", serveOpenAPI)

	api := e.Group("/api/v1", s.authenticate, s.rateLimit, s.readBody, s.idempotent)
	api.POST("/rooms", s.handle(s.createRoom))
	api.GET("/rooms", s.handle(s.listRooms))
	api.GET("/rooms/:id", s.handle(s.getRoom))
	api.PATCH("/rooms/:id", s.handle(s.patchRoom))
	api.DELETE("/rooms/:id", s.handle(s.deleteRoom))
	api.POST("/rooms/:id/end", s.handle(s.endRoom))
	api.POST("/rooms/:id/tokens", s.handle(s.createToken))
	api.GET("/rooms/:id/participants", s.handle(s.listParticipants))
	api.DELETE("/rooms/:id/participants/:pid", s.handle(s.kickParticipant))
	api.POST("/rooms/:id/participants/:pid/mute", s.handle(s.muteParticipant))
	api.PATCH("/rooms/:id/participants/:pid", s.handle(s.patchParticipant))
	api.POST("/rooms/:id/data", s.handle(s.sendData))
	api.POST("/rooms/:id/chat", s.handle(s.sendChat))
	api.GET("/sessions/:id/chat", s.handle(s.listSessionChat))
	api.GET("/rooms/:id/sessions", s.handle(s.listRoomSessions))
	api.GET("/sessions", s.handle(s.listSessions))
	api.GET("/sessions/:id", s.handle(s.getSession))
	api.GET("/sessions/:id/participants", s.handle(s.listSessionParticipants))
	api.GET("/sessions/:id/stats", s.handle(s.sessionStats))
	api.POST("/sessions/:id/end", s.handle(s.endSession))
	api.POST("/rooms/:id/recordings", s.handle(s.startRecording))
	api.GET("/rooms/:id/recordings", s.handle(s.listRoomRecordings))
	api.GET("/recordings", s.handle(s.listRecordings))
	api.GET("/recordings/:id", s.handle(s.getRecording))
	api.POST("/recordings/:id/stop", s.handle(s.stopRecording))
	api.GET("/recordings/:id/files/:name", s.handle(s.downloadRecordingFile))
	api.DELETE("/recordings/:id", s.handle(s.deleteRecording))
	api.DELETE("/recordings/:id/files", s.handle(s.removeRecordingFiles))
	api.GET("/webhooks/deliveries", s.handle(s.listDeliveries))
	api.GET("/cluster/nodes", s.handle(s.listNodes))
	api.POST("/cluster/nodes/:id/drain", s.handle(s.drainNode))

	e.GET("/rtc", s.signaling)
	whip := e.Group("", s.cors)
	for _, path := range []string{"/whip/:room", "/whep/:room"} {
		whip.OPTIONS(path, s.whipOptions(http.MethodPost))
		whip.POST(path, s.handle(s.whipOffer))
		whip.OPTIONS(path+"/:pid", s.whipOptions(sessionMethods))
		whip.DELETE(path+"/:pid", s.handle(s.whipDelete))
		whip.PATCH(path+"/:pid", s.handle(s.whipPatch))
	}

	e.GET("/", s.servePage)
	e.GET("/rooms/:id", s.servePage)
	e.GET("/app.js", serveFile("app.js", "text/javascript; charset=utf-8", "no-cache"))
	e.GET("/app.css", serveFile("app.css", "text/css; charset=utf-8", "no-cache"))
	e.GET("/favicon.ico", serveFile("favicon.ico", "image/x-icon", "public, max-age=86400"))
	// The POSTs outside /api/v1 honour Idempotency-Key too: these two by
	// the client's address, WHIP and WHEP by the token's identity
	// (whipOffer).
	e.POST("/dev/token", s.devTokensOn, s.idempotentByAddress, s.handle(s.devToken))
	e.POST("/rooms/:id/token", s.readBody, s.idempotentByAddress, s.handle(s.publicToken))
	return e
}

// handle adapts a handler that returns an error to gin.
func (s *Server) handle(h func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			s.abort(c, err)
		}
	}
}

// abort writes err as the error body and stops the chain; a request for a
// room another node owns is forwarded to that node instead.
func (s *Server) abort(c *gin.Context, err error) {
	if s.forward(c, err) {
		c.Abort()
		return
	}
	ae, unexpected := toAPIError(err)
	if unexpected {
		s.log.Error("request failed", "method", c.Request.Method, "route", c.FullPath(), "err", err)
	}
	if ae.status == http.StatusTooManyRequests || ae.status == http.StatusServiceUnavailable {
		// Retry-After is set by the error or the caller where they know
		// better.
		if ae.retryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(ae.retryAfter))
		} else if c.Writer.Header().Get("Retry-After") == "" {
			c.Header("Retry-After", "1")
		}
	}
	writeJSON(c, ae.status, ae.body())
	c.Abort()
}

// writeJSON renders v with encoding/json (whose output the tests and the
// OpenAPI document describe), not gin's pluggable codec.
func writeJSON(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types reach here; a failure is a bug.
		panic(fmt.Sprintf("httpapi: encode response: %v", err))
	}
	c.Data(status, "application/json; charset=utf-8", b)
}
