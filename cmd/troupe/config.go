package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/turnserver"
)

// Config is everything `troupe serve` needs. The zero value is not useful;
// start from DefaultConfig. Each field can be set, from lowest to highest
// precedence, by the YAML file given with --config, by the environment
// variable TROUPE_<FLAG> (dashes as underscores, upper case) and by the flag.
type Config struct {
	// DataDir holds keys.json and the database (DataDir/db). Default "./troupe-data".
	DataDir string `yaml:"data_dir"`
	// HTTPAddr is the host:port of the HTTP API. Default "127.0.0.1:7880":
	// loopback only, so a first run exposes nothing.
	HTTPAddr string `yaml:"http_addr"`
	// TLSCert and TLSKey are the PEM files of the certificate (with its
	// chain) and key served on HTTPAddr, which then speaks HTTPS and WSS
	// only. The files are read again when they change: a renewed
	// certificate needs no restart. Default empty: plain HTTP, for
	// loopback or behind a reverse proxy that terminates TLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// RTCUDPPort is the single UDP port all peer connections share (ICE UDP
	// mux). Default 7882; 0 picks a free port.
	RTCUDPPort int `yaml:"rtc_udp_port"`
	// RTCTCPPort is the single TCP port all peer connections share for
	// ICE over TCP (pion's TCP mux), offered as a passive candidate beside
	// UDP so that a client whose UDP is blocked still connects. Default
	// 7881; 0 picks a free port; -1 turns ICE over TCP off.
	RTCTCPPort int `yaml:"rtc_tcp_port"`
	// RTCBind is the address the media ports bind to. Default "127.0.0.1",
	// like HTTPAddr, so a local start keeps media on localhost; "0.0.0.0"
	// serves every interface.
	RTCBind string `yaml:"rtc_bind"`
	// RTCAnnounceIP lists the public addresses a server behind a 1:1 NAT
	// offers instead of its own. Default none.
	RTCAnnounceIP stringList `yaml:"rtc_announce_ip"`
	// RTCBandwidthEstimation says whose bandwidth is estimated from their
	// feedback: "simulcast" (the default; also "true"), each subscriber
	// while it receives a track in layers, which the estimate picks;
	// "always", every subscriber, its estimate in its stats; "off" (also
	// "false"), nobody: the layers are left to the rendered size and the
	// room's quality alone (and the estimate's cost per packet saved).
	RTCBandwidthEstimation estimationMode `yaml:"rtc_bandwidth_estimation"`
	// RTCAudioLevel negotiates the audio level header extension: the
	// server reads the publishers' levels, tells the rooms' active
	// speakers and forwards the levels to subscribers. Default true.
	RTCAudioLevel bool `yaml:"rtc_audio_level"`
	// ICEURLs lists STUN and TURN URLs handed to clients
	// ("stun:host:3478", "turn:host:3478?transport=udp"). Default none.
	ICEURLs stringList `yaml:"ice_urls"`
	// TURNUsername and TURNCredential go with the TURN URLs.
	TURNUsername   string `yaml:"turn_username"`
	TURNCredential string `yaml:"turn_credential"`
	// TURNEnabled runs the built-in TURN server, for clients that reach
	// the media ports neither over UDP nor over TCP. Each joiner gets
	// credentials of its own, derived from the API secret and valid for
	// TURNCredentialTTL, in `joined` and in WHIP/WHEP Link headers. Its
	// relays send to this server's media port only. Default false.
	TURNEnabled bool `yaml:"turn_enabled"`
	// TURNUDPPort is the TURN server's UDP port, bound to RTCBind.
	// Default 3478; 0 picks a free port.
	TURNUDPPort int `yaml:"turn_udp_port"`
	// TURNTLSPort is the TURN over TLS port (turns:), serving TLSCert;
	// used only with TLSCert. Default 5349; 0 picks a free port; -1 off.
	TURNTLSPort int `yaml:"turn_tls_port"`
	// TURNRealm is the TURN realm. Default "troupe".
	TURNRealm string `yaml:"turn_realm"`
	// TURNRelayIP is the address relays are announced at, the server's
	// public one. Default the first RTCAnnounceIP, else RTCBind (required
	// when RTCBind is 0.0.0.0 and nothing is announced).
	TURNRelayIP string `yaml:"turn_relay_ip"`
	// TURNHost is the host in the TURN URLs handed to clients: a name the
	// TLS certificate holds, for turns:. Default TURNRelayIP.
	TURNHost string `yaml:"turn_host"`
	// TURNRelayPortMin and TURNRelayPortMax bound the relays' UDP ports,
	// for a firewall. Default 0 and 0: any free port.
	TURNRelayPortMin int `yaml:"turn_relay_port_min"`
	TURNRelayPortMax int `yaml:"turn_relay_port_max"`
	// TURNCredentialTTL is how long a joiner's TURN credentials stay
	// valid; a relay cannot be refreshed past it. Default 12h.
	TURNCredentialTTL time.Duration `yaml:"turn_credential_ttl"`
	// PublicURL is the scheme, host and port of the rooms' links (a room's
	// url is PublicURL/rooms/{id}): what people outside reach, like
	// "https://meet.example.com" behind a reverse proxy. Default empty:
	// http:// (https:// with TLSCert) and HTTPAddr, a wildcard host made
	// the host name.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies lists the reverse proxies in front of the server, as
	// IP addresses and CIDR networks. A request from one of them is counted
	// (limits per client address) and logged under the client address
	// the TrustedProxyHeader names: the right-most one that is not a
	// trusted proxy. Default none: every request is its peer's, whatever
	// headers it carries.
	TrustedProxies stringList `yaml:"trusted_proxies"`
	// TrustedProxyHeader is the header the trusted proxies write the
	// client's address in: "x-forwarded-for" (the default) or
	// "forwarded" (RFC 7239). The other is never read: a proxy passes on
	// what the client wrote in it.
	TrustedProxyHeader string `yaml:"trusted_proxy_header"`
	// DevJoinTokens lets the web page get join tokens without an admin
	// token, for trying Troupe locally. Never enable it on a server others
	// can reach. Default false.
	DevJoinTokens bool `yaml:"dev_join_tokens"`
	// CORSOrigins lists the origins whose browser pages may call WHIP and
	// WHEP ("https://app.example.com"), or "*" for any. Default "*": WHIP
	// and WHEP authenticate with a bearer token the page sends itself,
	// never with cookies, so another origin gains nothing a token would
	// not already give it. Empty sends no CORS headers.
	CORSOrigins stringList `yaml:"cors_origins"`
	// WebhookURLs lists endpoints that receive the events of every room
	// (besides each room's own webhook), signed with the API secret.
	// Default none.
	WebhookURLs stringList `yaml:"webhook_urls"`
	// WebhookEvents lists the events those endpoints get; wildcards like
	// "participant-*" work. Default "*".
	WebhookEvents stringList `yaml:"webhook_events"`
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses. Default false: a room's webhook could otherwise probe the
	// server's own network.
	WebhookAllowPrivate bool `yaml:"webhook_allow_private"`
	// WebhookMaxAge is how long a delivery is retried before it is kept
	// as failed. Default 24h.
	WebhookMaxAge time.Duration `yaml:"webhook_max_age"`
	// DebugAddr, when set, is the host:port where Go's profiler is served
	// (/debug/pprof/), apart from the API and without authentication: a
	// loopback address only, others are refused. Default empty: off.
	DebugAddr string `yaml:"debug_addr"`
	// MetricsAddr, when set, is the host:port where /metrics is served, on
	// a listener of its own without authentication, and then not on the
	// API's port: a loopback or private address that only the scrapers
	// reach. A public address, a wildcard (":9090", "0.0.0.0:9090") or a
	// host name bound to a public address is refused unless
	// MetricsAllowPublic. Default empty: /metrics on the API's port, as a
	// local start wants.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsAllowPublic lets MetricsAddr be a wildcard or a public
	// address, for a container or a host whose firewall keeps the port
	// from the internet. Default false.
	MetricsAllowPublic bool `yaml:"metrics_allow_public"`
	// GCPercent is the garbage collector's target heap growth, in percent
	// of the live heap (Go's GOGC). 0, the default, leaves it to GOGC, or
	// Go's 100; -1 turns the collector off but for a memory limit set with
	// GOMEMLIMIT. Either way the server returns the garbage of bursts of
	// joins to the system once they end (see memoryTrimmer).
	GCPercent int `yaml:"gc_percent"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `yaml:"log_format"`
	// RequestTimeout bounds how long an API call waits for its room actor
	// before answering 503; a WHIP or WHEP offer and an ICE restart, whose
	// answers wait for the server's ICE candidates, wait up to 3s more
	// (actors.OfferTimeout). Default 2s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// PassivateAfter stops a room actor idle that long; the next message
	// reloads it from the store. Default 2m.
	PassivateAfter time.Duration `yaml:"passivate_after"`
	// DrainTimeout is how long a node stopping on SIGTERM (or drained in a
	// cluster) lets its sessions go on, refusing new rooms and joins, before
	// it tells its participants to reconnect and exits; it stops sooner once
	// its rooms are empty. 0 stops at once. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxViewersPerIdentity caps the WHEP viewers one join token's
	// identity may have in a room at once. Default 4.
	MaxViewersPerIdentity int `yaml:"max_viewers_per_identity"`
	// WHIPRate is the sustained WHIP and WHEP offers a second one client
	// address, and one token identity of a room, may post, with bursts of WHIPBurst (0 means max(1,
	// WHIPRate)); 0 turns the limit off. Default 2, bursts of 20.
	WHIPRate  float64 `yaml:"whip_rate"`
	WHIPBurst int     `yaml:"whip_burst"`
	// RateLimit is the sustained requests per second allowed per API key;
	// 0 (the default) disables rate limiting.
	RateLimit float64 `yaml:"rate_limit"`
	// RateBurst is how many requests above RateLimit may arrive at once.
	// 0 (the default) means max(1, RateLimit).
	RateBurst int `yaml:"rate_burst"`
	// SignalingRate is the sustained messages a second one signaling
	// socket may send, with bursts of SignalingBurst; beyond it messages
	// are refused, and a run of refusals closes the socket. Default 20,
	// bursts of 40.
	SignalingRate  float64 `yaml:"signaling_rate"`
	SignalingBurst int     `yaml:"signaling_burst"`
	// SignalingPending caps the signaling sockets opened without a token
	// that still wait for their join message, and SignalingPendingPerAddr
	// those of one client address; one more is refused before the
	// upgrade. Default 1024, and 16 per address.
	SignalingPending        int `yaml:"signaling_pending"`
	SignalingPendingPerAddr int `yaml:"signaling_pending_per_addr"`
	// ChatRate is the sustained chat messages a second one participant may
	// send, with bursts of ChatBurst; ChatMaxPerSession the messages a
	// session keeps. Default 2, bursts of 10, and 10000.
	ChatRate          float64 `yaml:"chat_rate"`
	ChatBurst         int     `yaml:"chat_burst"`
	ChatMaxPerSession int     `yaml:"chat_max_per_session"`
	// APIKey and APISecret, when both set, are the key pair that signs and
	// verifies tokens; when both empty (the default) the pair kept in
	// DataDir/keys.json is used, generated on first start.
	APIKey    string `yaml:"api_key"`
	APISecret string `yaml:"api_secret"`
	// TokenMaxLifetime refuses a token whose exp is further ahead than
	// this, however well signed, and `troupe token --ttl` above it.
	// Default 720h (30 days).
	TokenMaxLifetime time.Duration `yaml:"token_max_lifetime"`
	// EtcdEndpoints, when set, makes the server a node of a cluster: the
	// client URLs of the etcd that holds the store of record (instead of
	// Pebble in DataDir/db), the nodes' leases and the rooms' owners.
	// Every node of a cluster sets the same APIKey and APISecret. Default
	// none: a single node on Pebble.
	EtcdEndpoints stringList `yaml:"etcd_endpoints"`
	// NodeID names the node in the cluster, unique among its nodes.
	// Default empty: the host name and the port of HTTPAddr ("host-7880").
	NodeID string `yaml:"node_id"`
	// AdvertiseURL is where the other nodes reach this node's HTTP API.
	// Default empty: http:// (https:// with TLSCert) and HTTPAddr, its host made the host name if
	// it is a wildcard (0.0.0.0 or empty).
	AdvertiseURL string `yaml:"advertise_url"`
	// ClusterLeaseTTL is how long the node's lease outlives its last
	// renewal: how long a node cut off from etcd keeps its rooms, and how
	// long the rooms of a dead node wait for another owner. Whole seconds,
	// at least 1s. Default 5s.
	ClusterLeaseTTL time.Duration `yaml:"cluster_lease_ttl"`
	// RecordingsDir holds the recordings' files, a directory per
	// recording. Default empty: DataDir/recordings.
	RecordingsDir string `yaml:"recordings_dir"`
	// RecordingMaxDuration stops a recording that has run this long. 0
	// means no limit. Default 4h.
	RecordingMaxDuration time.Duration `yaml:"recording_max_duration"`
	// RecordingMinFreeDisk is the free space, in MiB, below which a
	// recording stops as failed (disk_full), so that what it wrote stays
	// playable. Default 1024.
	RecordingMinFreeDisk int `yaml:"recording_min_free_disk"`
}

// The default WHIP and WHEP offer budget of a client address: a page's
// few viewers or an encoder's restarts get through at once, a loop of
// joins and leaves does not.
const (
	defaultWHIPRate  = 2
	defaultWHIPBurst = 20
)

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		DataDir:                 "./troupe-data",
		HTTPAddr:                "127.0.0.1:7880",
		RTCUDPPort:              7882,
		RTCTCPPort:              7881,
		RTCBind:                 "127.0.0.1",
		RTCBandwidthEstimation:  estimateSimulcast,
		RTCAudioLevel:           true,
		SignalingRate:           20,
		SignalingBurst:          40,
		SignalingPending:        1024,
		SignalingPendingPerAddr: 16,
		ChatRate:                2,
		ChatBurst:               10,
		ChatMaxPerSession:       10000,
		// The built-in TURN server's, used when it is enabled.
		TURNUDPPort:       3478,
		TURNTLSPort:       5349,
		TURNRealm:         turnserver.DefaultRealm,
		TURNCredentialTTL: turnserver.DefaultCredentialTTL,
		CORSOrigins:       stringList{"*"},
		WebhookEvents:     stringList{"*"},
		WebhookMaxAge:     24 * time.Hour,
		TokenMaxLifetime:  auth.DefaultMaxLifetime,
		LogLevel:          "info",
		LogFormat:         "text",
		RequestTimeout:    2 * time.Second,
		PassivateAfter:    2 * time.Minute,
		DrainTimeout:      30 * time.Second,

		TrustedProxyHeader: httpapi.ProxyHeaderXForwardedFor,

		MaxViewersPerIdentity: actors.DefaultMaxViewersPerIdentity,
		WHIPRate:              defaultWHIPRate,
		WHIPBurst:             defaultWHIPBurst,

		RecordingMaxDuration: 4 * time.Hour,
		RecordingMinFreeDisk: 1024,
		// ClusterLeaseTTL is used in cluster mode only.
		ClusterLeaseTTL: 5 * time.Second,
	}
}

// Validate reports the first invalid field, named as its flag.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: --data-dir must not be empty", ErrInvalidConfig)
	}
	if err := validateHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("%w: --http-addr %q: %v", ErrInvalidConfig, c.HTTPAddr, err)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: --tls-cert and --tls-key go together: set both or neither", ErrInvalidConfig)
	}
	if err := checkBaseURL("public-url", c.PublicURL); err != nil {
		return err
	}
	if c.DebugAddr != "" {
		if err := validateHostPort(c.DebugAddr); err != nil {
			return fmt.Errorf("%w: --debug-addr %q: %v", ErrInvalidConfig, c.DebugAddr, err)
		}
		// The profiler has no authentication and its profiles show the
		// process's memory: only this host may reach it.
		if host, _, _ := net.SplitHostPort(c.DebugAddr); !loopbackHost(host) {
			return fmt.Errorf("%w: --debug-addr %q: the profiler is unauthenticated: give a loopback address (127.0.0.1, [::1] or localhost)", ErrInvalidConfig, c.DebugAddr)
		}
	}
	if err := c.validateMetricsAddr(); err != nil {
		return err
	}
	if c.RTCTCPPort < rtcTCPOff || c.RTCTCPPort > 65535 {
		return fmt.Errorf("%w: --rtc-tcp-port %d: must be -1 (off) or 0..65535", ErrInvalidConfig, c.RTCTCPPort)
	}
	if err := c.validateTURN(); err != nil {
		return err
	}
	if err := c.rtcConfig(nil).Validate(); err != nil {
		var ce *rtc.ConfigError
		if errors.As(err, &ce) && rtcFlags[ce.Field] != "" {
			return fmt.Errorf("%w: %s", ErrInvalidConfig, ce.Named("--"+rtcFlags[ce.Field]))
		}
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return fmt.Errorf("%w: --log-level: %v", ErrInvalidConfig, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("%w: --log-format %q: must be text or json", ErrInvalidConfig, c.LogFormat)
	}
	if c.RequestTimeout <= 0 {
		return fmt.Errorf("%w: --request-timeout %v: must be positive", ErrInvalidConfig, c.RequestTimeout)
	}
	if c.PassivateAfter <= 0 {
		return fmt.Errorf("%w: --passivate-after %v: must be positive", ErrInvalidConfig, c.PassivateAfter)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("%w: --drain-timeout %v: must not be negative", ErrInvalidConfig, c.DrainTimeout)
	}
	if math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) || c.RateLimit < 0 {
		return fmt.Errorf("%w: --rate-limit %v: must be a finite number, not negative", ErrInvalidConfig, c.RateLimit)
	}
	if _, err := httpapi.ParseTrustedProxies(c.TrustedProxies); err != nil {
		return fmt.Errorf("%w: --trusted-proxies %v", ErrInvalidConfig, err)
	}
	if err := httpapi.CheckTrustedProxyHeader(c.TrustedProxyHeader); err != nil {
		return fmt.Errorf("%w: --trusted-proxy-header %v", ErrInvalidConfig, err)
	}
	if err := httpapi.CheckCORSOrigins(c.CORSOrigins); err != nil {
		return fmt.Errorf("%w: --cors-origins: %v", ErrInvalidConfig, err)
	}
	if err := c.validateTokenMaxLifetime(); err != nil {
		return err
	}
	if c.WebhookMaxAge <= 0 {
		return fmt.Errorf("%w: --webhook-max-age %v: must be positive", ErrInvalidConfig, c.WebhookMaxAge)
	}
	if c.RecordingMaxDuration < 0 {
		return fmt.Errorf("%w: --recording-max-duration %v: must not be negative (0 = no limit)", ErrInvalidConfig, c.RecordingMaxDuration)
	}
	if c.RecordingMinFreeDisk < 0 {
		return fmt.Errorf("%w: --recording-min-free-disk %d: must not be negative", ErrInvalidConfig, c.RecordingMinFreeDisk)
	}
	for _, d := range c.webhookDestinations() {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%w: --webhook-urls/--webhook-events: %v", ErrInvalidConfig, err)
		}
	}
	if c.GCPercent < gcPercentOff {
		return fmt.Errorf("%w: --gc-percent %d: must be -1 (off), 0 (default) or a percentage", ErrInvalidConfig, c.GCPercent)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"signaling-rate", c.SignalingRate}, {"chat-rate", c.ChatRate}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) || r.v <= 0 {
			return fmt.Errorf("%w: --%s %v: must be a finite number above 0", ErrInvalidConfig, r.flag, r.v)
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"signaling-burst", c.SignalingBurst}, {"signaling-pending", c.SignalingPending},
		{"signaling-pending-per-addr", c.SignalingPendingPerAddr}, {"chat-burst", c.ChatBurst},
		{"chat-max-per-session", c.ChatMaxPerSession},
	} {
		if n.v < 1 {
			return fmt.Errorf("%w: --%s %d: must be at least 1", ErrInvalidConfig, n.flag, n.v)
		}
	}
	if c.RateBurst < 0 {
		return fmt.Errorf("%w: --rate-burst %d: must not be negative", ErrInvalidConfig, c.RateBurst)
	}
	if math.IsNaN(c.WHIPRate) || math.IsInf(c.WHIPRate, 0) || c.WHIPRate < 0 {
		return fmt.Errorf("%w: --whip-rate %v: must be a finite number, not negative", ErrInvalidConfig, c.WHIPRate)
	}
	if c.WHIPBurst < 0 {
		return fmt.Errorf("%w: --whip-burst %d: must not be negative", ErrInvalidConfig, c.WHIPBurst)
	}
	if c.MaxViewersPerIdentity <= 0 {
		return fmt.Errorf("%w: --max-viewers-per-identity %d: must be positive", ErrInvalidConfig, c.MaxViewersPerIdentity)
	}
	if err := c.validateKey(); err != nil {
		return err
	}
	return c.validateCluster()
}

// validateTokenMaxLifetime checks --token-max-lifetime, which `troupe
// token` reads too: under auth.MinMaxLifetime the tokens minted by default
// would be dead on arrival.
func (c Config) validateTokenMaxLifetime() error {
	if c.TokenMaxLifetime < auth.MinMaxLifetime {
		return fmt.Errorf("%w: --token-max-lifetime %v: must be at least %s", ErrInvalidConfig, c.TokenMaxLifetime, shortDuration(auth.MinMaxLifetime))
	}
	return nil
}

// validateMetricsAddr checks --metrics-addr: a host:port apart from the
// API's, and, since its /metrics has no authentication, neither a public
// IP address nor a wildcard unless --metrics-allow-public. A host name
// is checked once bound (metricsBindCheck), on the address it resolved to.
func (c Config) validateMetricsAddr() error {
	if c.MetricsAddr == "" {
		return nil
	}
	if err := validateHostPort(c.MetricsAddr); err != nil {
		return fmt.Errorf("%w: --metrics-addr %q: %v", ErrInvalidConfig, c.MetricsAddr, err)
	}
	host, port, _ := net.SplitHostPort(c.MetricsAddr)
	if port != "0" && c.MetricsAddr == c.HTTPAddr {
		return fmt.Errorf("%w: --metrics-addr %q: must differ from --http-addr, which then serves no /metrics", ErrInvalidConfig, c.MetricsAddr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	ip, _, _ := strings.Cut(host, "%")
	if a, err := netip.ParseAddr(ip); err == nil {
		return c.metricsBindCheck(a)
	}
	return nil
}

// metricsBindCheck refuses a --metrics-addr bound to a, the address given
// or the one its host name resolved to, when a is public or a wildcard
// and --metrics-allow-public is not set.
func (c Config) metricsBindCheck(a netip.Addr) error {
	a = a.Unmap()
	if c.MetricsAllowPublic || (!a.IsUnspecified() && !webhook.PublicAddr(a)) {
		return nil
	}
	what := "a public address"
	if a.IsUnspecified() {
		what = "every interface"
	}
	return fmt.Errorf("%w: --metrics-addr %q: binds %s (%s), where /metrics is unauthenticated: give a loopback or private address, or set --metrics-allow-public if a firewall keeps the port private",
		ErrInvalidConfig, c.MetricsAddr, a, what)
}

// validateTURN checks the built-in TURN server's settings, which matter
// only when --turn-enabled is set.
func (c Config) validateTURN() error {
	if !c.TURNEnabled {
		return nil
	}
	port := func(flag string, v, min int) error {
		if v < min || v > 65535 {
			return fmt.Errorf("%w: --%s %d: must be %d..65535", ErrInvalidConfig, flag, v, min)
		}
		return nil
	}
	if err := port("turn-udp-port", c.TURNUDPPort, 0); err != nil {
		return err
	}
	if err := port("turn-tls-port", c.TURNTLSPort, -1); err != nil {
		return err
	}
	if c.TURNRealm == "" {
		return fmt.Errorf("%w: --turn-realm must not be empty", ErrInvalidConfig)
	}
	if c.TURNRelayIP != "" {
		if ip := net.ParseIP(c.TURNRelayIP); ip == nil || ip.IsUnspecified() {
			return fmt.Errorf("%w: --turn-relay-ip %q: must be an IP address clients can reach", ErrInvalidConfig, c.TURNRelayIP)
		}
	} else if ip := net.ParseIP(c.RTCBind); len(c.RTCAnnounceIP) == 0 && ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%w: --turn-enabled with --rtc-bind %s needs --turn-relay-ip or --rtc-announce-ip: the address clients reach the relays at", ErrInvalidConfig, c.RTCBind)
	}
	if strings.ContainsAny(c.TURNHost, "/:?@ ") && net.ParseIP(c.TURNHost) == nil {
		return fmt.Errorf("%w: --turn-host %q: must be a host name or an IP address", ErrInvalidConfig, c.TURNHost)
	}
	lo, hi := c.TURNRelayPortMin, c.TURNRelayPortMax
	if (lo == 0) != (hi == 0) || lo < 0 || hi > 65535 || lo > hi {
		return fmt.Errorf("%w: --turn-relay-port-min %d / --turn-relay-port-max %d: set both (1 <= min <= max <= 65535) or neither", ErrInvalidConfig, lo, hi)
	}
	if c.TURNCredentialTTL < time.Minute {
		return fmt.Errorf("%w: --turn-credential-ttl %v: must be at least 1m", ErrInvalidConfig, c.TURNCredentialTTL)
	}
	return nil
}

// turnTLS reports whether the TURN server listens on TLS too.
func (c Config) turnTLS() bool { return c.TURNEnabled && c.tls() && c.TURNTLSPort != turnTLSOff }

// turnTLSOff is the --turn-tls-port that turns TURN over TLS off.
const turnTLSOff = -1

// validateCluster checks the cluster settings, which matter only when
// --etcd-endpoints is set.
func (c Config) validateCluster() error {
	if !c.clustered() {
		return nil
	}
	for _, e := range c.EtcdEndpoints {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: --etcd-endpoints %q: must be an http:// or https:// URL with a host", ErrInvalidConfig, e)
		}
	}
	if _, ok := c.configuredKey(); !ok {
		return fmt.Errorf("%w: --etcd-endpoints needs --api-key and --api-secret, the same on every node", ErrInvalidConfig)
	}
	if c.NodeID != "" && strings.ContainsAny(c.NodeID, "/ \t\n") {
		return fmt.Errorf("%w: --node-id %q: must not hold '/' or white space", ErrInvalidConfig, c.NodeID)
	}
	if err := checkBaseURL("advertise-url", c.AdvertiseURL); err != nil {
		return err
	}
	if c.ClusterLeaseTTL < time.Second {
		return fmt.Errorf("%w: --cluster-lease-ttl %v: must be at least 1s", ErrInvalidConfig, c.ClusterLeaseTTL)
	}
	if c.ClusterLeaseTTL%time.Second != 0 {
		// etcd grants leases in whole seconds: say so rather than round.
		return fmt.Errorf("%w: --cluster-lease-ttl %v: must be whole seconds (etcd leases are)", ErrInvalidConfig, c.ClusterLeaseTTL)
	}
	return nil
}

// clustered reports whether the server is a node of a cluster.
func (c Config) clustered() bool { return len(c.EtcdEndpoints) > 0 }

// nodeID is NodeID, or its default: the host name and the HTTP port.
func (c Config) nodeID(httpAddr string) (string, error) {
	if c.NodeID != "" {
		return c.NodeID, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("%w: --node-id is not set and the host name is unknown: %v", ErrInvalidConfig, err)
	}
	_, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("--node-id: %w", err)
	}
	return host + "-" + port, nil
}

// checkBaseURL refuses a set URL flag that is not http:// or https://
// with a host and no path, query or fragment.
func checkBaseURL(flag, v string) error {
	if v == "" {
		return nil
	}
	if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: --%s %q: must be an http:// or https:// URL with a host and no path", ErrInvalidConfig, flag, v)
	}
	return nil
}

// publicURL is PublicURL, or its default: the API's own URL, as
// advertiseURL makes it.
func (c Config) publicURL(httpAddr string) (string, error) {
	if c.PublicURL != "" {
		return strings.TrimSuffix(c.PublicURL, "/"), nil
	}
	return c.baseURL(httpAddr, "--public-url")
}

// advertiseURL is AdvertiseURL, or its default made from the address the
// API listens on.
func (c Config) advertiseURL(httpAddr string) (string, error) {
	if c.AdvertiseURL != "" {
		return strings.TrimSuffix(c.AdvertiseURL, "/"), nil
	}
	return c.baseURL(httpAddr, "--advertise-url")
}

// baseURL is the URL of the API listening on httpAddr, its host made the
// host name if it is a wildcard (0.0.0.0 or empty); flag names the
// setting that would have spared the guess.
func (c Config) baseURL(httpAddr, flag string) (string, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("%w: %s is not set, --http-addr has no host and the host name is unknown: %v", ErrInvalidConfig, flag, err)
		}
	}
	return c.scheme() + "://" + net.JoinHostPort(host, port), nil
}

// tls reports whether the API is served over TLS.
func (c Config) tls() bool { return c.TLSCert != "" }

// scheme is the API's URL scheme.
func (c Config) scheme() string {
	if c.tls() {
		return "https"
	}
	return "http"
}

// rtcFlags names the flag that sets each field of rtcConfig.
var rtcFlags = map[string]string{
	"UDPPort":        "rtc-udp-port",
	"TCPPort":        "rtc-tcp-port",
	"BindAddr":       "rtc-bind",
	"AnnounceIPs":    "rtc-announce-ip",
	"ICEURLs":        "ice-urls",
	"TURNUsername":   "turn-username",
	"TURNCredential": "turn-credential",
}

// rtcTCPOff is the --rtc-tcp-port that turns ICE over TCP off.
const rtcTCPOff = -1

// rtcConfig is the media engine's configuration, which rtc validates.
func (c Config) rtcConfig(log *slog.Logger) rtc.Config {
	return rtc.Config{
		UDPPort:                   c.RTCUDPPort,
		TCP:                       c.RTCTCPPort != rtcTCPOff,
		TCPPort:                   max(c.RTCTCPPort, 0),
		BindAddr:                  c.RTCBind,
		AnnounceIPs:               c.RTCAnnounceIP,
		ICEURLs:                   c.ICEURLs,
		TURNUsername:              c.TURNUsername,
		TURNCredential:            c.TURNCredential,
		TURN:                      c.turnConfig(),
		NoBandwidthEstimation:     c.RTCBandwidthEstimation == estimateOff,
		BandwidthEstimationAlways: c.RTCBandwidthEstimation == estimateAlways,
		NoAudioLevel:              !c.RTCAudioLevel,
		Logger:                    log,
	}
}

// turnConfig is the built-in TURN server's configuration, or nil when it
// is off. The server fills in the secret and the TLS configuration, the
// media engine the addresses.
func (c Config) turnConfig() *turnserver.Config {
	if !c.TURNEnabled {
		return nil
	}
	return &turnserver.Config{
		Realm:         c.TURNRealm,
		UDPPort:       c.TURNUDPPort,
		TLSPort:       max(c.TURNTLSPort, 0),
		RelayIP:       c.TURNRelayIP,
		Host:          c.TURNHost,
		RelayPortMin:  c.TURNRelayPortMin,
		RelayPortMax:  c.TURNRelayPortMax,
		CredentialTTL: c.TURNCredentialTTL,
	}
}

// validateKey checks that the API key pair is either fully given and usable
// or not given at all.
func (c Config) validateKey() error {
	if (c.APIKey == "") != (c.APISecret == "") {
		return fmt.Errorf("%w: --api-key and --api-secret go together: set both or neither", ErrInvalidConfig)
	}
	if k, ok := c.configuredKey(); ok {
		if err := k.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

// configuredKey returns the key pair set explicitly, if any.
func (c Config) configuredKey() (auth.Key, bool) {
	if c.APIKey == "" {
		return auth.Key{}, false
	}
	return auth.Key{ID: c.APIKey, Secret: c.APISecret}, true
}

func validateHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number 0..65535")
	}
	return validateHost(host)
}

// loopbackHost reports whether host is a loopback IP address or localhost;
// empty (every interface) is not.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateHost refuses a host that is neither empty (every interface), an
// IP address nor a host name: a malformed address would otherwise be
// looked up as a name and fail only at listen, as "no such host".
func validateHost(host string) error {
	if host == "" {
		return nil
	}
	ip, _, _ := strings.Cut(host, "%") // an IPv6 address may name its zone
	if net.ParseIP(ip) != nil {
		return nil
	}
	if strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
		return fmt.Errorf("%s is not a valid IP address", host)
	}
	if len(host) > 253 {
		return errors.New("host name longer than 253 bytes")
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return fmt.Errorf("%q is neither an IP address nor a host name", host)
		}
	}
	return nil
}

// setting describes one configuration knob: its flag name (from which the
// environment variable and YAML key derive), its help text and the field.
type setting struct {
	name  string
	usage string
	field func(*Config) any // a pointer into the Config
}

// settings lists every field of Config in the order of --help.
var settings = []setting{
	{"data-dir", "directory for keys.json and the database", func(c *Config) any { return &c.DataDir }},
	{"http-addr", "host:port of the HTTP API", func(c *Config) any { return &c.HTTPAddr }},
	{"tls-cert", "PEM certificate (and chain) file: serve HTTPS and WSS (with --tls-key; reread when it changes)", func(c *Config) any { return &c.TLSCert }},
	{"tls-key", "PEM private key file of --tls-cert", func(c *Config) any { return &c.TLSKey }},
	{"rtc-udp-port", "UDP port shared by all peer connections (0 = any free port)", func(c *Config) any { return &c.RTCUDPPort }},
	{"rtc-tcp-port", "TCP port shared by all peer connections for ICE over TCP (0 = any free port, -1 = off)", func(c *Config) any { return &c.RTCTCPPort }},
	{"rtc-bind", "address the media UDP and TCP ports bind to (0.0.0.0 = every interface)", func(c *Config) any { return &c.RTCBind }},
	{"rtc-announce-ip", "public IPs to offer instead of the bound one (1:1 NAT)", func(c *Config) any { return &c.RTCAnnounceIP }},
	{"rtc-bandwidth-estimation", "whose bandwidth to estimate: simulcast (true: each subscriber of a track in layers, to pick them), always (every subscriber), off (false)", func(c *Config) any { return &c.RTCBandwidthEstimation }},
	{"rtc-audio-level", "read the publishers' audio levels: active speakers, and levels forwarded to subscribers", func(c *Config) any { return &c.RTCAudioLevel }},
	{"ice-urls", "STUN/TURN URLs handed to clients", func(c *Config) any { return &c.ICEURLs }},
	{"turn-username", "username for the TURN URLs of --ice-urls", func(c *Config) any { return &c.TURNUsername }},
	{"turn-credential", "credential for the TURN URLs of --ice-urls", func(c *Config) any { return &c.TURNCredential }},
	{"turn-enabled", "run the built-in TURN server (credentials per joiner, from the API secret)", func(c *Config) any { return &c.TURNEnabled }},
	{"turn-udp-port", "built-in TURN server's UDP port, on --rtc-bind (0 = any free port)", func(c *Config) any { return &c.TURNUDPPort }},
	{"turn-tls-port", "built-in TURN server's TLS port, with --tls-cert (0 = any free port, -1 = off)", func(c *Config) any { return &c.TURNTLSPort }},
	{"turn-realm", "built-in TURN server's realm", func(c *Config) any { return &c.TURNRealm }},
	{"turn-relay-ip", "public IP of the built-in TURN server's relays (default: first --rtc-announce-ip, else --rtc-bind)", func(c *Config) any { return &c.TURNRelayIP }},
	{"turn-host", "host name in the built-in TURN server's URLs, one the TLS certificate holds (default: --turn-relay-ip)", func(c *Config) any { return &c.TURNHost }},
	{"turn-relay-port-min", "lowest UDP port of the built-in TURN server's relays (0 with the max = any)", func(c *Config) any { return &c.TURNRelayPortMin }},
	{"turn-relay-port-max", "highest UDP port of the built-in TURN server's relays", func(c *Config) any { return &c.TURNRelayPortMax }},
	{"turn-credential-ttl", "how long a joiner's TURN credentials stay valid", func(c *Config) any { return &c.TURNCredentialTTL }},
	{"public-url", "base URL of the rooms' links, e.g. https://meet.example.com (default: http:// or https:// and --http-addr)", func(c *Config) any { return &c.PublicURL }},
	{"trusted-proxies", "reverse proxies (IP addresses, CIDR networks) whose --trusted-proxy-header names the client (default: none, headers ignored)", func(c *Config) any { return &c.TrustedProxies }},
	{"trusted-proxy-header", "the header the trusted proxies write the client's address in, the only one read: x-forwarded-for or forwarded", func(c *Config) any { return &c.TrustedProxyHeader }},
	{"dev-join-tokens", "let the web page mint join tokens itself (local use only)", func(c *Config) any { return &c.DevJoinTokens }},
	{"cors-origins", "origins whose pages may call WHIP/WHEP (* = any, empty = none)", func(c *Config) any { return &c.CORSOrigins }},
	{"webhook-urls", "endpoints that get every room's events", func(c *Config) any { return &c.WebhookURLs }},
	{"webhook-events", "events (or patterns) sent to --webhook-urls", func(c *Config) any { return &c.WebhookEvents }},
	{"webhook-allow-private", "let webhooks reach loopback and private addresses", func(c *Config) any { return &c.WebhookAllowPrivate }},
	{"webhook-max-age", "how long a webhook delivery is retried before it is kept as failed", func(c *Config) any { return &c.WebhookMaxAge }},
	{"debug-addr", "loopback host:port serving Go's profiler at /debug/pprof/, unauthenticated (empty = off)", func(c *Config) any { return &c.DebugAddr }},
	{"metrics-addr", "host:port (loopback or private) serving /metrics on its own listener, unauthenticated, instead of the API's port (empty = the API's port)", func(c *Config) any { return &c.MetricsAddr }},
	{"metrics-allow-public", "let --metrics-addr be a wildcard (:9090) or a public address, behind a firewall", func(c *Config) any { return &c.MetricsAllowPublic }},
	{"gc-percent", "garbage collection target, as GOGC (0 = GOGC, or Go's 100; -1 = off)", func(c *Config) any { return &c.GCPercent }},
	{"log-level", "debug, info, warn or error", func(c *Config) any { return &c.LogLevel }},
	{"log-format", "text or json", func(c *Config) any { return &c.LogFormat }},
	{"request-timeout", "how long an API call waits for its room before 503", func(c *Config) any { return &c.RequestTimeout }},
	{"passivate-after", "stop a room actor idle this long", func(c *Config) any { return &c.PassivateAfter }},
	{"drain-timeout", "on SIGTERM, how long sessions go on (no new rooms or joins) before the node stops (0 = at once)", func(c *Config) any { return &c.DrainTimeout }},
	{"max-viewers-per-identity", "WHEP viewers one join token's identity may have in a room at once", func(c *Config) any { return &c.MaxViewersPerIdentity }},
	{"whip-rate", "WHIP and WHEP offers per second per client address and per token identity (0 = unlimited)", func(c *Config) any { return &c.WHIPRate }},
	{"whip-burst", "WHIP and WHEP offers allowed at once above --whip-rate (0 = max(1, --whip-rate))", func(c *Config) any { return &c.WHIPBurst }},
	{"rate-limit", "requests per second per API key (0 = unlimited)", func(c *Config) any { return &c.RateLimit }},
	{"rate-burst", "requests allowed at once above --rate-limit (0 = max(1, --rate-limit))", func(c *Config) any { return &c.RateBurst }},
	{"signaling-rate", "messages a second one signaling socket may send; more are refused", func(c *Config) any { return &c.SignalingRate }},
	{"signaling-burst", "messages one signaling socket may send at once above --signaling-rate", func(c *Config) any { return &c.SignalingBurst }},
	{"signaling-pending", "signaling sockets without a token that may wait for their join message at once", func(c *Config) any { return &c.SignalingPending }},
	{"signaling-pending-per-addr", "signaling sockets without a token that one client address may have waiting for their join message", func(c *Config) any { return &c.SignalingPendingPerAddr }},
	{"chat-rate", "chat messages a second one participant may send; more are refused", func(c *Config) any { return &c.ChatRate }},
	{"chat-burst", "chat messages one participant may send at once above --chat-rate", func(c *Config) any { return &c.ChatBurst }},
	{"chat-max-per-session", "chat messages a session keeps; more are refused", func(c *Config) any { return &c.ChatMaxPerSession }},
	{"api-key", "API key (with --api-secret; default: the one in <data-dir>/keys.json)", func(c *Config) any { return &c.APIKey }},
	{"api-secret", "API secret (with --api-key, at least 32 bytes)", func(c *Config) any { return &c.APISecret }},
	{"token-max-lifetime", "longest a token may be valid for: one whose exp is further ahead is refused", func(c *Config) any { return &c.TokenMaxLifetime }},
	{"etcd-endpoints", "etcd client URLs: run as a cluster node on etcd instead of Pebble (needs --api-key/--api-secret)", func(c *Config) any { return &c.EtcdEndpoints }},
	{"node-id", "this node's name in the cluster (default: host name and HTTP port, host-7880)", func(c *Config) any { return &c.NodeID }},
	{"advertise-url", "URL where other nodes reach this node's API (default: http:// or https:// and --http-addr)", func(c *Config) any { return &c.AdvertiseURL }},
	{"cluster-lease-ttl", "how long a node cut off from etcd keeps its rooms", func(c *Config) any { return &c.ClusterLeaseTTL }},
	{"recordings-dir", "directory of the recordings' files (default: <data-dir>/recordings)", func(c *Config) any { return &c.RecordingsDir }},
	{"recording-max-duration", "stop a recording that has run this long (0 = no limit)", func(c *Config) any { return &c.RecordingMaxDuration }},
	{"recording-min-free-disk", "MiB of free disk below which a recording stops as failed (disk_full)", func(c *Config) any { return &c.RecordingMinFreeDisk }},
}

const configFlag = "config"

// envName returns the environment variable of a flag: data-dir -> TROUPE_DATA_DIR.
func envName(flag string) string {
	return "TROUPE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// yamlKey returns the YAML key of a flag: data-dir -> data_dir.
func yamlKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// configFlags binds the named settings (all of them if names is empty) and
// --config to a flag set. Flag values land in a scratch Config; load merges
// only the flags the user actually set.
type configFlags struct {
	fs     *pflag.FlagSet
	values Config
	file   string
	names  []string
}

func newConfigFlags(fs *pflag.FlagSet, names ...string) *configFlags {
	cf := &configFlags{fs: fs, values: DefaultConfig()}
	fs.StringVar(&cf.file, configFlag, "", "YAML configuration file (env "+envName(configFlag)+")")
	for _, s := range settings {
		if len(names) > 0 && !contains(names, s.name) {
			continue
		}
		cf.names = append(cf.names, s.name)
		bindFlag(fs, s.name, s.usage, s.field(&cf.values))
	}
	return cf
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// load builds the Config: defaults, then the YAML file, then the environment
// (read through lookup, as os.LookupEnv), then the flags that were set. It
// does not Validate.
func (cf *configFlags) load(lookup func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	file, _ := lookupEnv(lookup, envName(configFlag))
	if cf.fs.Changed(configFlag) {
		file = cf.file
	}
	if file != "" {
		if err := loadYAML(file, &cfg); err != nil {
			return Config{}, err
		}
	}
	for _, s := range settings {
		if !contains(cf.names, s.name) {
			continue
		}
		if cf.fs.Changed(s.name) {
			copyField(s.field(&cfg), s.field(&cf.values))
			continue
		}
		if v, ok := lookupSetting(lookup, envName(s.name), s.field(&cfg)); ok {
			if err := setFromString(s.field(&cfg), v); err != nil {
				return Config{}, fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, envName(s.name), v, err)
			}
		}
	}
	return cfg, nil
}

// lookupEnv treats an empty variable as unset, as most tools do.
func lookupEnv(lookup func(string) (string, bool), name string) (string, bool) {
	v, _ := lookup(name)
	return v, v != ""
}

// lookupSetting is lookupEnv for the setting at field, except that an
// empty list variable is the empty list, as the flag's --x= is
// (TROUPE_CORS_ORIGINS= allows no origin).
func lookupSetting(lookup func(string) (string, bool), name string, field any) (string, bool) {
	if _, list := field.(*stringList); list {
		return lookup(name)
	}
	return lookupEnv(lookup, name)
}

// bindFlag binds a setting's flag to p, its field. A setting of a type it
// does not know panics, so that no flag is silently missing.
func bindFlag(fs *pflag.FlagSet, name, usage string, p any) {
	how := "env " + envName(name)
	if _, ok := p.(*stringList); ok {
		how = "comma-separated or repeated; " + how
	}
	usage += " (" + how + ")"
	switch p := p.(type) {
	case *string:
		fs.StringVar(p, name, *p, usage)
	case *stringList:
		fs.Var(&listFlag{list: p}, name, usage)
	case *int:
		fs.IntVar(p, name, *p, usage)
	case *float64:
		fs.Float64Var(p, name, *p, usage)
	case *time.Duration:
		fs.DurationVar(p, name, *p, usage)
	case *bool:
		fs.BoolVar(p, name, *p, usage)
	case *estimationMode:
		fs.Var(p, name, usage)
	default:
		panic(fmt.Sprintf("setting %s: unsupported type %T", name, p))
	}
}

// copyField copies the field src points to into the one dst points to;
// both point to the same field of two Configs.
func copyField(dst, src any) {
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}

// setFromString sets the field dst points to from the text of an
// environment variable.
func setFromString(dst any, v string) error {
	switch d := dst.(type) {
	case *string:
		*d = v
	case *stringList:
		*d = splitList(v)
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New("not an integer")
		}
		*d = n
	case *float64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return errors.New("not a number")
		}
		*d = f
	case *time.Duration:
		t, err := time.ParseDuration(v)
		if err != nil {
			return errors.New("not a duration (like 500ms, 2s, 5m)")
		}
		*d = t
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("not a boolean (true or false)")
		}
		*d = b
	case *estimationMode:
		return d.Set(v)
	default:
		return fmt.Errorf("a setting of type %T cannot be set from the environment", dst)
	}
	return nil
}

// estimationMode is whose bandwidth the server estimates
// (RTCBandwidthEstimation). It was a boolean: true and false still say
// simulcast and off.
type estimationMode string

const (
	estimateOff       estimationMode = "off"
	estimateSimulcast estimationMode = "simulcast"
	estimateAlways    estimationMode = "always"
)

// Set implements pflag.Value.
func (m *estimationMode) Set(v string) error {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "simulcast", "true":
		*m = estimateSimulcast
	case "always":
		*m = estimateAlways
	case "off", "false":
		*m = estimateOff
	default:
		return fmt.Errorf("%q: not off, simulcast or always (or false, true)", v)
	}
	return nil
}

func (m *estimationMode) String() string { return string(*m) }

// Type implements pflag.Value.
func (m *estimationMode) Type() string { return "off|simulcast|always" }

func (m *estimationMode) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: rtc_bandwidth_estimation: not off, simulcast or always", n.Line)
	}
	if err := m.Set(n.Value); err != nil {
		return fmt.Errorf("line %d: rtc_bandwidth_estimation: %w", n.Line, err)
	}
	return nil
}

// stringList is a setting of several values: a flag takes them
// comma-separated or repeated, the environment comma-separated, YAML as a
// sequence or, as the environment, one comma-separated string.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		*l = splitList(n.Value)
		return nil
	}
	var v []string
	if err := n.Decode(&v); err != nil {
		return err
	}
	*l = v
	return nil
}

// listFlag is the flag of a stringList: its first use replaces the
// default, later ones add to it.
type listFlag struct {
	list *stringList
	set  bool
}

func (f *listFlag) Set(v string) error {
	if !f.set {
		*f.list, f.set = nil, true
	}
	*f.list = append(*f.list, splitList(v)...)
	return nil
}

func (f *listFlag) String() string { return strings.Join(*f.list, ",") }

func (f *listFlag) Type() string { return "strings" }

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// oneLine folds multi-line error texts (yaml.v3 writes one line per bad
// key) so the process exits with a single line.
func oneLine(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// webhookDestinations are the server's own webhook destinations.
func (c Config) webhookDestinations() []webhook.Destination {
	var out []webhook.Destination
	for _, u := range c.WebhookURLs {
		out = append(out, webhook.Destination{Endpoint: u, Events: c.WebhookEvents})
	}
	return out
}
