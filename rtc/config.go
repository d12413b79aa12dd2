package rtc

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/pion/transport/v5"

	"github.com/troupe-media/troupe/rtc/turnserver"
)

// DefaultBindAddr keeps media on the local machine unless told otherwise,
// like the HTTP listener's default.
const DefaultBindAddr = "127.0.0.1"

// Config configures an Engine. The zero value is valid: an ephemeral UDP
// port on 127.0.0.1, no ICE over TCP and no STUN or TURN servers.
type Config struct {
	// UDPPort is the one UDP port every peer connection uses (the ICE UDP
	// mux; --rtc-udp-port). Zero picks a free port, for tests.
	UDPPort int
	// TCP offers ICE over TCP besides UDP: one TCP port (TCPPort) shared
	// by every peer connection, offered as a passive TCP candidate, so
	// that a client whose UDP is blocked still connects. Default false.
	TCP bool
	// TCPPort is the ICE TCP port when TCP is set (--rtc-tcp-port). Zero
	// picks a free port, for tests.
	TCPPort int
	// BindAddr is the address the UDP (and TCP) port is bound to (--rtc-bind).
	// Empty means DefaultBindAddr; "0.0.0.0" listens on every interface.
	BindAddr string
	// AnnounceIPs replace the host candidates' addresses in what the
	// server offers, for a server behind a 1:1 NAT (--rtc-announce-ip).
	AnnounceIPs []string
	// ICEURLs are STUN and TURN URLs ("stun:host:port", "turn:host:port",
	// "turns:host:port?transport=tcp") handed to clients.
	ICEURLs []string
	// TURNUsername and TURNCredential go with the TURN URLs.
	TURNUsername, TURNCredential string
	// TURN, if set, runs the built-in TURN server, whose URLs and
	// credentials of their own ICEServers hands to each client. The engine
	// fills its BindAddr (default BindAddr), its RelayIP (default the first
	// AnnounceIPs, else BindAddr), its Peers (the engine's UDP port on its
	// addresses: the relays reach nothing else) and its loggers.
	TURN *turnserver.Config
	// LoopbackOnly keeps every ICE candidate on loopback, IPv4 UDP only,
	// so that tests never touch a real network.
	LoopbackOnly bool
	// Net is the network whose interfaces the peer connections' ICE
	// agents gather on; nil means the host's, read once. Tests wrap it to
	// make gathering slow.
	Net transport.Net
	// NoBandwidthEstimation turns off the estimate of each subscriber's
	// bandwidth (estimator.go) and the layer choice it drives.
	NoBandwidthEstimation bool
	// BandwidthEstimationAlways estimates every subscriber's bandwidth,
	// not only while it receives a track in layers (the default, where
	// the estimate has a layer to choose): each subscriber's estimate is
	// then in its stats, for what each packet sent costs more.
	BandwidthEstimationAlways bool
	// NoAudioLevel leaves the audio level header extension out of every
	// negotiation: publishers' levels are neither read nor forwarded,
	// and nobody is ever an active speaker (AudioLevels reports false).
	NoAudioLevel bool
	// Logger receives the engine's and pion's logs; slog.Default() if nil.
	Logger *slog.Logger
}

// ConfigError is a Config field that cannot be used. It wraps
// ErrBadConfig.
type ConfigError struct {
	// Field is the Config field's name, like "UDPPort".
	Field string
	// Value is the offending value as text, quoted if it is a string;
	// empty when the field's absence is the problem.
	Value string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ConfigError) Error() string { return "rtc: config " + e.Named(e.Field) }

func (e *ConfigError) Unwrap() error { return ErrBadConfig }

// Named is the error's text with the field called name, for a program
// that sets the field from a setting of its own name (a flag).
func (e *ConfigError) Named(name string) string {
	if e.Value == "" {
		return name + ": " + e.Reason
	}
	return name + " " + e.Value + ": " + e.Reason
}

// Validate reports the first field of cfg that cannot be used, as a
// *ConfigError. Zero fields are valid: they take their defaults.
func (cfg Config) Validate() error {
	if cfg.BindAddr != "" && net.ParseIP(cfg.BindAddr) == nil {
		return &ConfigError{Field: "BindAddr", Value: fmt.Sprintf("%q", cfg.BindAddr), Reason: "not an IP address"}
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return &ConfigError{Field: "UDPPort", Value: strconv.Itoa(cfg.UDPPort), Reason: "must be 0..65535"}
	}
	if cfg.TCPPort < 0 || cfg.TCPPort > 65535 {
		return &ConfigError{Field: "TCPPort", Value: strconv.Itoa(cfg.TCPPort), Reason: "must be 0..65535"}
	}
	for _, ip := range cfg.AnnounceIPs {
		if net.ParseIP(ip) == nil {
			return &ConfigError{Field: "AnnounceIPs", Value: fmt.Sprintf("%q", ip), Reason: "not an IP address"}
		}
	}
	turn := false
	for _, u := range cfg.ICEURLs {
		scheme, rest, ok := strings.Cut(u, ":")
		switch {
		case !ok || rest == "" || strings.HasPrefix(rest, "//"):
			return &ConfigError{Field: "ICEURLs", Value: fmt.Sprintf("%q", u), Reason: "want scheme:host[:port]"}
		case scheme == "stun" || scheme == "stuns":
		case scheme == "turn" || scheme == "turns":
			turn = true
		default:
			return &ConfigError{Field: "ICEURLs", Value: fmt.Sprintf("%q", u), Reason: "scheme must be stun, stuns, turn or turns"}
		}
	}
	if turn && cfg.TURNUsername == "" {
		return &ConfigError{Field: "TURNUsername", Reason: "required with TURN URLs"}
	}
	if turn && cfg.TURNCredential == "" {
		return &ConfigError{Field: "TURNCredential", Reason: "required with TURN URLs"}
	}
	return nil
}

// withDefaults returns cfg with its zero fields set, or a *ConfigError.
func (cfg Config) withDefaults() (Config, error) {
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
