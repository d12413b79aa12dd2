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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
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

	// shutdownTimeout bounds the whole orderly stop: draining HTTP, stopping
	// the room actors. Pebble is closed after it whatever happened.
	shutdownTimeout = 30 * time.Second

	// bannerTokenTTL is the lifetime of the admin token printed at start.
	bannerTokenTTL = 24 * time.Hour
)

// errDraining is what /readyz reports once shutdown has begun, so a load
// balancer stops sending traffic while in-flight requests finish.
var errDraining = errors.New("shutting down")

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
		cfg, err := cf.load(os.Getenv)
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

// run serves the API until ctx is cancelled, then stops in order: stop
// accepting and finish in-flight requests, stop the room actors, close the
// store. It listens on cfg.HTTPAddr unless ln is given (tests pass one on
// 127.0.0.1:0). The first start's banner with an admin token goes to
// stdout, logs to stderr.
func run(ctx context.Context, cfg Config, ln net.Listener, stdout, stderr io.Writer) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	defer applyGCPercent(cfg.GCPercent)()
	trimCtx, stopTrimming := context.WithCancel(context.Background())
	waitTrimmer := newMemoryTrimmer(log).start(trimCtx)
	defer func() {
		stopTrimming()
		waitTrimmer()
	}()
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	// Until the server owns ln, closing it is ours.
	served := false
	defer func() {
		if !served {
			ln.Close()
		}
	}()

	key, keyFrom, err := resolveKey(cfg, log)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	store, err := persistence.Open(persistence.Config{
		Dir:    filepath.Join(cfg.DataDir, "db"),
		Logger: log, // persistence, webhook and httpapi name themselves as the component
	})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	// The store closes last, after everything that writes to it has stopped.
	defer func() {
		if cerr := store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
		}
		if err != nil {
			log.Error("stopped", "err", err)
		} else {
			log.Info("stopped")
		}
	}()

	reg := prometheus.NewRegistry()
	if err := registerAll(reg,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		store.Collector(),
		currentBuild().collector(),
	); err != nil {
		return err
	}
	media, err := rtc.NewEngine(rtc.Config{
		UDPPort:        cfg.RTCUDPPort,
		BindAddr:       cfg.RTCBind,
		AnnounceIPs:    splitList(cfg.RTCAnnounceIP),
		ICEURLs:        splitList(cfg.ICEURLs),
		TURNUsername:   cfg.TURNUsername,
		TURNCredential: cfg.TURNCredential,
		Logger:         log.With("component", "rtc"),
	})
	if err != nil {
		return fmt.Errorf("start media: %w", err)
	}
	// The media port closes after the room actors, which close their peer
	// connections as they stop.
	defer func() {
		if cerr := media.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close media: %w", cerr))
		}
	}()
	mediaMetrics := rtc.NewMetrics()
	if err := registerAll(reg, mediaMetrics); err != nil {
		return err
	}
	// Webhook deliveries run beside the server and stop after the room
	// actors, so that what they queue while stopping stays in the outbox
	// for the next start.
	for _, d := range cfg.webhookDestinations() {
		if err := webhook.CheckEndpoint(ctx, d.Endpoint, cfg.WebhookAllowPrivate); err != nil {
			return fmt.Errorf("%w: --webhook-urls %s: %v", ErrInvalidConfig, d.Endpoint, err)
		}
	}
	deliverer, err := webhook.New(webhook.Config{
		Store:         store,
		DefaultSecret: []byte(key.Secret),
		AllowPrivate:  cfg.WebhookAllowPrivate,
		MaxAge:        cfg.WebhookMaxAge,
		Logger:        log,
		Registerer:    reg,
	})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	deliverCtx, stopDelivering := context.WithCancel(context.Background())
	delivered := make(chan error, 1)
	go func() { delivered <- deliverer.Run(deliverCtx) }()
	defer func() {
		stopDelivering()
		if derr := <-delivered; derr != nil && !errors.Is(derr, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("webhooks: %w", derr))
		}
	}()
	rooms, err := actors.NewRooms(actors.Config{
		Store:          store,
		RequestTimeout: cfg.RequestTimeout,
		PassivateAfter: cfg.PassivateAfter,
		Logger:         log.With("component", "actors"),
		Registerer:     reg,
		Media:          media,
		MediaMetrics:   mediaMetrics,
		Webhooks:       cfg.webhookDestinations(),
		OnEvents:       deliverer.Notify,
		CheckWebhook: func(ctx context.Context, endpoint string) error {
			return webhook.CheckEndpoint(ctx, endpoint, cfg.WebhookAllowPrivate)
		},
	})
	if err != nil {
		return fmt.Errorf("start room actors: %w", err)
	}
	roomsClosed := false
	closeRooms := func(ctx context.Context) error {
		roomsClosed = true
		if err := rooms.Close(ctx); err != nil {
			return fmt.Errorf("stop room actors: %w", err)
		}
		return nil
	}
	defer func() {
		if !roomsClosed {
			err = errors.Join(err, closeRooms(context.Background()))
		}
	}()

	verifier, err := auth.NewVerifier(key)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	api, err := httpapi.New(httpapi.Config{
		Rooms:       rooms,
		Verifier:    verifier,
		SigningKey:  key,
		Idempotency: actors.NewIdempotency(store),
		Logger:      log,
		Registry:    reg,
		Ready: func(context.Context) error {
			if draining.Load() {
				return errDraining
			}
			return nil
		},
		RateLimit:     cfg.RateLimit,
		RateBurst:     cfg.RateBurst,
		DevJoinTokens: cfg.DevJoinTokens,
		CORSOrigins:   splitList(cfg.CORSOrigins),
	})
	if err != nil {
		return fmt.Errorf("http api: %w", err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	baseURL := "http://" + dialableAddr(ln.Addr())
	log.Info("troupe serving", "version", versionString(), "http", baseURL,
		"data_dir", cfg.DataDir, "rtc_udp", media.LocalAddr().String())
	if keyFrom == keyCreated {
		if err := printBanner(stdout, cfg, key, baseURL); err != nil {
			return err
		}
	}

	if cfg.DebugAddr != "" {
		stopDebug, err := startDebugServer(cfg.DebugAddr, log)
		if err != nil {
			return err
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			err = errors.Join(err, stopDebug(ctx))
		}()
	}

	served = true
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err = <-serveErr:
		// Serve only returns early on a listener failure.
		err = fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	draining.Store(true)
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(stopCtx); serr != nil {
		err = errors.Join(err, fmt.Errorf("http shutdown: %w", serr))
		srv.Close()
	}
	if err == nil {
		<-serveErr // http.ErrServerClosed
	}
	// Shutdown does not wait for hijacked connections: end the signaling
	// sockets and WHIP/WHEP sessions ourselves, before their rooms stop.
	if cerr := api.Close(stopCtx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close signaling: %w", cerr))
	}
	log.Info("shutting down: stopping room actors")
	if cerr := closeRooms(stopCtx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	log.Info("shutting down: closing the store")
	return err
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
func dialableAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// printBanner tells the person who just started Troupe for the first time
// how to use it at once, with an admin token signed by the key pair this
// start created. Later starts print nothing: they log where the key is and
// how to mint a token instead.
func printBanner(w io.Writer, cfg Config, key auth.Key, baseURL string) error {
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), bannerTokenTTL))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, `Troupe is ready at %[1]s (API key %[2]s, saved in %[3]s).
Admin token, valid for 24h:

    export TOKEN=%[4]s
    curl -H "Authorization: Bearer $TOKEN" %[1]s/api/v1/rooms

More tokens: troupe token --data-dir %[5]s --admin
Web page: %[1]s/ (join tokens from POST /api/v1/rooms/{id}/tokens, or start with --dev-join-tokens)
`, baseURL, key.ID, filepath.Join(cfg.DataDir, keysFile), token, cfg.DataDir)
	return err
}
