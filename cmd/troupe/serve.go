package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/rtc"
)

// HTTP server limits. Request bodies are at most 1 MiB (httpapi enforces
// it), so a client that needs more than ReadTimeout to send one is stalling.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10

	// shutdownTimeout bounds the waits of the orderly stop: draining HTTP,
	// the signaling sockets, the room actors, the profiler. Pebble is closed
	// after it whatever happened.
	shutdownTimeout = 30 * time.Second

	// bannerTokenTTL is the lifetime of the admin token printed at start,
	// unless --token-max-lifetime is shorter.
	bannerTokenTTL = 24 * time.Hour
)

// errDraining is what /readyz reports once shutdown has begun.
var errDraining = &httpapi.NotReadyError{Reason: "shutting down"}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (the default command)",
		Long: `Run the Troupe server. Every flag can also be set in the environment as
TROUPE_<FLAG> (TROUPE_HTTP_ADDR for --http-addr) or in the YAML file given with
--config (http_addr: ...). Flags win over the environment, which wins over
the file.`,
		Args: cobra.NoArgs,
	}
	cf := newConfigFlags(cmd.Flags())
	// --cpu-profile is for `troupe bench media`, which profiles the server
	// it starts; hidden, as it is no operator setting.
	var cpuProfile string
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile of the whole run to this file")
	_ = cmd.Flags().MarkHidden("cpu-profile")
	cmd.RunE = func(cmd *cobra.Command, _ []string) (err error) {
		cfg, err := cf.load(os.LookupEnv)
		if err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		if cpuProfile != "" {
			stop, err := startCPUProfile(cpuProfile)
			if err != nil {
				return err
			}
			defer func() { err = errors.Join(err, stop()) }()
		}
		return run(cmd.Context(), cfg, nil, cmd.OutOrStdout(), os.Stderr)
	}
	return cmd
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func() error, err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// run serves the API until ctx is cancelled (SIGINT or SIGTERM), then
// drains the node (see Drain) and shuts the server down. It listens on cfg.HTTPAddr unless ln is given
// (tests pass one on 127.0.0.1:0). The first start's banner with an admin
// token goes to stdout, logs to stderr.
func run(ctx context.Context, cfg Config, ln net.Listener, stdout, stderr io.Writer) error {
	// The server's own webhook endpoints are configuration: one it may not
	// reach stops it before it opens anything (ctx bounds the lookups).
	for _, d := range cfg.webhookDestinations() {
		if err := webhook.CheckEndpoint(ctx, d.Endpoint, cfg.WebhookAllowPrivate); errors.Is(err, webhook.ErrForbiddenAddress) {
			return fmt.Errorf("%w: --webhook-urls %s: %v (--webhook-allow-private allows it)", ErrInvalidConfig, d.Endpoint, err)
		} else if err != nil {
			return fmt.Errorf("%w: --webhook-urls %s: %v", ErrInvalidConfig, d.Endpoint, err)
		}
	}
	s, err := NewServer(cfg, ln, stdout, stderr)
	if err != nil {
		return err
	}
	err = s.Start(ctx)
	if err == nil {
		select {
		case err = <-s.Failed():
		case <-ctx.Done():
			s.drainOnSignal(context.Background(), cfg.DrainTimeout)
		case <-s.drainAsked:
			s.drainOnSignal(ctx, cfg.DrainTimeout)
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(err, s.Shutdown(stopCtx))
}

// Server is one Troupe server: the store, the media engine, the room
// actors, the webhook deliverer and the HTTP API wired together.
//
// NewServer opens and builds everything, in this order: the API listener,
// the key, the store, the media port, the webhook deliverer, the room
// actors, the HTTP API. Start sets the collector's target, starts the
// background work (memory trimmer, webhook deliveries, the profiler, the
// metrics listener) and then serves. Shutdown stops it all in the order
// written there, from the edge inwards.
type Server struct {
	cfg     Config
	log     *slog.Logger
	stdout  io.Writer
	ln      net.Listener
	key     auth.Key
	keyFrom keySource

	store     persistence.Backend // Pebble, or etcd in a cluster
	cluster   *cluster            // nil on a single node
	media     *rtc.Engine
	deliverer *webhook.Deliverer
	rooms     *actors.Rooms
	api       *httpapi.Server
	srv       *http.Server
	reg       *prometheus.Registry // what /metrics serves
	// certs serves --tls-cert; nil without TLS.
	certs *certReloader
	// draining turns /readyz to 503 once shutdown has begun, so that a
	// load balancer stops sending traffic while in-flight requests finish.
	draining atomic.Bool
	// drainAsked is closed by the drain endpoint: run then drains and
	// stops as on SIGTERM.
	drainAsked chan struct{}
	askDrain   sync.Once

	// What Start started, each stopped by Shutdown.
	restoreGC      func()
	stopTrimming   context.CancelFunc
	waitTrimmer    func()
	stopDelivering context.CancelFunc
	delivered      chan error // the deliverer's result
	stopDebug      func(context.Context) error
	stopMetrics    func(context.Context) error
	served         chan struct{} // closed when the HTTP server's Serve returns
	failed         chan error    // Serve's error when it returned by itself
}

// NewServer validates cfg and builds the server, which serves once
// started; it listens on cfg.HTTPAddr unless ln is given, and owns ln
// either way. The first start's banner goes to stdout, logs to stderr.
// Once NewServer succeeds, Shutdown must be called, whether Start was
// called or not; if NewServer fails it has released all it took.
func NewServer(cfg Config, ln net.Listener, stdout, stderr io.Writer) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, err
	}
	log := newLogger(stderr, cfg)
	// The server's own records (start, keys, drain, stop) name it as their
	// component; each part it starts names its own.
	s := &Server{cfg: cfg, log: log.With("component", "server"), stdout: stdout, ln: ln, drainAsked: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Shutdown(context.Background()))
		}
	}()
	if cfg.tls() {
		if s.certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey, log.With("component", "tls")); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
	}

	key, keyFrom, err := resolveKey(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.key, s.keyFrom = key, keyFrom
	if err := prepareDataDir(cfg.DataDir, s.log); err != nil {
		return nil, err
	}
	clk := clock.System{} // every part reads the time and runs its timers on it
	startedAt := clk.Now().UTC()
	httpAddr := dialableAddr(s.ln.Addr())
	var store persistence.Backend
	var roomOwners actors.Owners
	var nodes httpapi.NodeLister
	load := &nodeLoad{} // filled once the rooms run
	if cfg.clustered() {
		c, err := joinCluster(cfg, key, httpAddr, load, clk, log)
		if err != nil {
			return nil, err
		}
		s.cluster, store, roomOwners, nodes = c, c.store, owners{c}, c.nodes
	} else {
		pebbleStore, err := persistence.Open(persistence.Config{
			Dir:    filepath.Join(cfg.DataDir, "db"),
			Logger: log, // persistence, webhook and httpapi name themselves as the component
			Clock:  clk,
		})
		if errors.Is(err, syscall.EAGAIN) {
			// Pebble locks its directory; the lock's own error says only
			// "resource temporarily unavailable".
			return nil, &storeLockedError{dir: filepath.Join(cfg.DataDir, "db"), err: err}
		}
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		store = pebbleStore
		nodes = singleNode(cfg, httpAddr, startedAt, load)
	}
	s.store = store

	reg := prometheus.NewRegistry()
	s.reg = reg
	storeMetrics := newStoreRooms(store.Collector())
	if err := registerAll(reg,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		storeMetrics,
		currentBuild().collector(),
		s.drainingMetric(),
	); err != nil {
		return nil, err
	}
	rtcConfig := cfg.rtcConfig(log.With("component", "rtc"))
	if rtcConfig.TURN != nil {
		// Every node of a cluster shares the secret, so any of them mints
		// credentials the owner of a room accepts.
		rtcConfig.TURN.Secret = []byte(key.Secret)
		if cfg.turnTLS() {
			rtcConfig.TURN.TLS = s.certs.tlsConfig()
		}
	}
	media, err := rtc.NewEngine(rtcConfig)
	if err != nil {
		return nil, fmt.Errorf("start media: %w", err)
	}
	s.media = media
	if t := media.TURN(); t != nil {
		if err := registerAll(reg, t.Collector()); err != nil {
			return nil, err
		}
	}
	mediaMetrics := rtc.NewMetrics()
	if err := registerAll(reg, mediaMetrics); err != nil {
		return nil, err
	}
	var claims webhook.Claims // nil on a single node: it delivers every queue
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), clusterJoinTimeout)
		dc, err := s.cluster.store.DeliveryClaims(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("webhook delivery claims: %w", err)
		}
		claims = dc
	}
	deliverer, err := webhook.New(webhook.Config{
		Store:         store,
		Claims:        claims,
		DefaultSecret: []byte(key.Secret),
		AllowPrivate:  cfg.WebhookAllowPrivate,
		MaxAge:        cfg.WebhookMaxAge,
		Logger:        log,
		Registerer:    reg,
		Clock:         clk,
	})
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	s.deliverer = deliverer
	rooms, err := actors.NewRooms(actors.Config{
		Store:          store,
		RequestTimeout: cfg.RequestTimeout,
		PassivateAfter: cfg.PassivateAfter,
		Logger:         log.With("component", "actors"),
		Registerer:     reg,
		Clock:          clk,
		Media:          media,
		MediaMetrics:   mediaMetrics,
		Chat:           actors.ChatConfig{Rate: cfg.ChatRate, Burst: cfg.ChatBurst, MaxPerSession: cfg.ChatMaxPerSession},
		Webhooks:       cfg.webhookDestinations(),
		OnEvents:       deliverer.Notify,
		CheckWebhook: func(ctx context.Context, endpoint string) error {
			err := webhook.CheckEndpoint(ctx, endpoint, cfg.WebhookAllowPrivate)
			if errors.Is(err, webhook.ErrForbiddenAddress) {
				// The 422 tells the caller how an operator allows it.
				return fmt.Errorf("%w (a server started with --webhook-allow-private allows it)", err)
			}
			return err
		},
		Owners:    roomOwners,
		Recording: cfg.recordingConfig(s.cluster),

		MaxViewersPerIdentity: cfg.MaxViewersPerIdentity,
	})
	if err != nil {
		return nil, fmt.Errorf("start room actors: %w", err)
	}
	s.rooms = rooms
	storeMetrics.countFailed(rooms.FailedRooms)
	load.rooms, load.media = rooms, mediaMetrics
	if s.cluster != nil {
		if err := registerAll(reg, s.cluster.metrics); err != nil {
			return nil, err
		}
		s.cluster.start(rooms.DropAll, rooms.TakeOver)
	}

	var forwardTo httpapi.OwnerLocator // nil on a single node
	var nodeID string
	if s.cluster != nil {
		forwardTo, nodeID = s.cluster, s.cluster.node.ID
	}
	verifier, err := auth.NewVerifierWith(auth.VerifierConfig{MaxLifetime: cfg.TokenMaxLifetime}, key)
	if err != nil {
		return nil, err
	}
	// The listener's own address: a wildcard host becomes the host name.
	publicURL, err := cfg.publicURL(s.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	api, err := httpapi.New(httpapi.Config{
		Rooms:                   rooms,
		Verifier:                verifier,
		SigningKey:              key,
		Idempotency:             actors.NewIdempotency(store),
		Logger:                  log,
		Registry:                reg,
		MetricsElsewhere:        cfg.MetricsAddr != "",
		Clock:                   clk,
		Ready:                   s.ready,
		RateLimit:               cfg.RateLimit,
		RateBurst:               cfg.RateBurst,
		WHIPRate:                cfg.WHIPRate,
		WHIPBurst:               cfg.WHIPBurst,
		SignalingRate:           cfg.SignalingRate,
		SignalingBurst:          cfg.SignalingBurst,
		SignalingPending:        cfg.SignalingPending,
		SignalingPendingPerAddr: cfg.SignalingPendingPerAddr,
		DevJoinTokens:           cfg.DevJoinTokens,
		PublicURL:               publicURL,
		TrustedProxies:          cfg.TrustedProxies,
		TrustedProxyHeader:      cfg.TrustedProxyHeader,
		CORSOrigins:             cfg.CORSOrigins,
		Nodes:                   nodes,
		Owners:                  forwardTo,
		NodeID:                  nodeID,
		// The owner answers within its request timeout, after a claim of
		// etcd's maybe, and a WHIP or WHEP offer within the offer's bound
		// after its join (the answer waits for the owner's ICE
		// candidates): an owner silent for longer is frozen or cut off,
		// and the caller is told to retry.
		ForwardTimeout: cfg.RequestTimeout + actors.OfferTimeout(cfg.RequestTimeout) + time.Second,
		Drain:          s.requestDrain,
	})
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	s.api = api
	s.srv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.With("component", "httpapi").Handler(), slog.LevelWarn),
	}
	if s.certs != nil {
		s.srv.TLSConfig = s.certs.tlsConfig()
	}
	return s, nil
}

// ready backs /readyz: a draining node takes no new work, and a cluster
// node that holds no lease refuses every write until it registers again.
func (s *Server) ready(context.Context) error {
	if s.draining.Load() {
		return errDraining
	}
	if s.cluster != nil {
		return s.cluster.ready()
	}
	return nil
}

// Start starts the background work and serves the API. It returns once
// serving; Failed reports a listener that fails later. If Start fails,
// Shutdown still stops what it started.
func (s *Server) Start(ctx context.Context) error {
	s.restoreGC = applyGCPercent(s.cfg.GCPercent)
	trimCtx, stopTrimming := context.WithCancel(context.Background())
	s.stopTrimming, s.waitTrimmer = stopTrimming, newMemoryTrimmer(s.log).start(trimCtx)
	// Webhook deliveries run beside the server until the room actors have
	// stopped (see Shutdown).
	deliverCtx, stopDelivering := context.WithCancel(context.Background())
	s.stopDelivering, s.delivered = stopDelivering, make(chan error, 1)
	go func() { s.delivered <- s.deliverer.Run(deliverCtx) }()

	baseURL := s.cfg.scheme() + "://" + dialableAddr(s.ln.Addr())
	rtcTCP := "off" // --rtc-tcp-port -1
	if a := s.media.TCPAddr(); a != nil {
		rtcTCP = a.String()
	}
	s.log.Info("troupe serving", "version", versionString(), "http", baseURL,
		"data_dir", s.cfg.DataDir, "rtc_udp", s.media.LocalAddr().String(), "rtc_tcp", rtcTCP)
	if s.cfg.DebugAddr != "" {
		stopDebug, err := startDebugServer(s.cfg.DebugAddr, s.log)
		if err != nil {
			return err
		}
		s.stopDebug = stopDebug
	}
	if s.cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", httpapi.MetricsHandler(s.reg))
		stopMetrics, err := startSideServer(s.cfg.MetricsAddr, "metrics", "/metrics", mux, s.log, s.cfg.metricsBindCheck)
		if err != nil {
			return err
		}
		s.stopMetrics = stopMetrics
	}
	// Every port is bound: nothing left fails for the key's sake.
	if s.keyFrom == keyCreated {
		if err := saveNewKey(s.cfg.DataDir, s.key, s.log); err != nil {
			return err
		}
		if err := printBanner(s.stdout, s.cfg, s.key, baseURL); err != nil {
			return err
		}
	}

	s.served, s.failed = make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(s.served)
		// Serve only returns by itself on a listener failure.
		serve := s.srv.Serve
		if s.certs != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func(ln net.Listener) error { return s.srv.ServeTLS(ln, "", "") }
		}
		if err := serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("http server: %w", err)
		}
	}()
	return nil
}

// Failed delivers the error of an API listener that failed while serving;
// the server is then to be shut down.
func (s *Server) Failed() <-chan error { return s.failed }

// Shutdown stops the server, each step once the one before it is done:
//
//  1. in a cluster, stop taking over the rooms of lost nodes (see
//     stopTakingOver); stop accepting and finish the requests in flight
//     (/readyz answers 503 meanwhile);
//  2. end the signaling sockets and WHIP/WHEP sessions, which
//     http.Server.Shutdown does not wait for, before their rooms stop;
//  3. stop the room actors, which close their peer connections;
//  4. stop the profiler and the metrics listener;
//  5. stop the webhook deliverer, after the rooms so that what they
//     queue while stopping stays in the outbox for the next start;
//  6. close the media port, after the peer connections that use it;
//  7. close the store, after everything that writes to it;
//  8. stop the memory trimmer and restore the collector's target.
//
// ctx bounds the waits of steps 1 to 4; whatever happened by then, the
// steps after it still run and the store is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	fail := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	if s.cluster != nil {
		s.cluster.stopTakingOver()
	}
	if s.served != nil {
		s.log.Info("shutting down: finishing in-flight requests")
		s.draining.Store(true)
		if err := s.srv.Shutdown(ctx); err != nil {
			fail("http shutdown", err)
			s.srv.Close()
		}
		<-s.served
	} else if s.ln != nil {
		s.ln.Close() // never served: the listener is still ours
	}
	if s.api != nil {
		fail("close signaling", s.api.Close(ctx))
	}
	if s.rooms != nil {
		s.log.Info("shutting down: stopping room actors")
		fail("stop room actors", s.rooms.Close(ctx))
	}
	if s.stopDebug != nil {
		fail("stop profiler", s.stopDebug(ctx))
	}
	if s.stopMetrics != nil {
		fail("stop metrics", s.stopMetrics(ctx))
	}
	if s.stopDelivering != nil {
		s.stopDelivering()
		if err := <-s.delivered; !errors.Is(err, context.Canceled) {
			fail("webhooks", err)
		}
	}
	if s.media != nil {
		fail("close media", s.media.Close())
	}
	if s.cluster != nil {
		s.cluster.close() // the store revokes the lease as it closes
	}
	if s.store != nil {
		s.log.Info("shutting down: closing the store")
		fail("close store", s.store.Close())
		if err := errors.Join(errs...); err != nil {
			s.log.Error("stopped", "err", err)
		} else {
			s.log.Info("stopped")
		}
	}
	if s.stopTrimming != nil {
		s.stopTrimming()
		s.waitTrimmer()
		s.restoreGC()
	}
	return errors.Join(errs...)
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// dialableAddr turns a listening address into one a local client can dial:
// a wildcard host becomes loopback.
func dialableAddr(a net.Addr) string { return dialable(a.String()) }

// dialable is dialableAddr of a host:port, which may name its host.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// printBanner tells the person who just started Troupe for the first time
// how to use it at once, with an admin token signed by the key pair this
// start created. Later starts print nothing: they log where the key is and
// how to mint a token instead.
func printBanner(w io.Writer, cfg Config, key auth.Key, baseURL string) error {
	ttl := cfg.tokenTTL(bannerTokenTTL)
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), ttl))
	if err != nil {
		return err
	}
	pageTokens := "join tokens from POST /api/v1/rooms/{id}/tokens, or start with --dev-join-tokens"
	if cfg.DevJoinTokens {
		pageTokens = "it gets join tokens from /dev/token: --dev-join-tokens hands them to anyone"
	}
	_, err = fmt.Fprintf(w, `Troupe is ready at %[1]s (API key %[2]s, saved in %[3]s).
Admin token, valid for %[6]s:

    export TOKEN=%[4]s
    curl -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/rooms

More tokens: troupe token --data-dir %[5]s --admin
Web page: %[1]s/ (%[7]s)
`, baseURL, key.ID, filepath.Join(cfg.DataDir, keysFile), token, cfg.DataDir, shortDuration(ttl), pageTokens)
	return err
}

// recordingConfig is the room actors' recording configuration; in a
// cluster, the records name this node as the holder of their files.
func (c *Config) recordingConfig(cl *cluster) actors.RecordingConfig {
	dir := c.RecordingsDir
	if dir == "" {
		dir = filepath.Join(c.DataDir, "recordings")
	}
	rc := actors.RecordingConfig{Dir: dir, MaxDuration: c.RecordingMaxDuration, MinFreeBytes: uint64(c.RecordingMinFreeDisk) << 20}
	if cl != nil {
		rc.NodeID = cl.node.ID
	}
	return rc
}
