package rtc

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
)

// DefaultBindAddr keeps media on the local machine unless told otherwise,
// like the HTTP listener's default.
const DefaultBindAddr = "127.0.0.1"

// Config configures an Engine. The zero value is valid: an ephemeral UDP
// port on 127.0.0.1 and no STUN or TURN servers.
type Config struct {
	// UDPPort is the one UDP port every peer connection uses (the ICE UDP
	// mux; --rtc-udp-port). Zero picks a free port, for tests.
	UDPPort int
	// BindAddr is the address the UDP port is bound to (--rtc-bind).
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
	// LoopbackOnly keeps every ICE candidate on loopback, IPv4 UDP only,
	// so that tests never touch a real network.
	LoopbackOnly bool
	// Logger receives the engine's and pion's logs; slog.Default() if nil.
	Logger *slog.Logger
}

// withDefaults returns cfg with its zero fields set, or an error wrapping
// ErrBadConfig.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if net.ParseIP(cfg.BindAddr) == nil {
		return cfg, fmt.Errorf("%w: bind address %q is not an IP address", ErrBadConfig, cfg.BindAddr)
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return cfg, fmt.Errorf("%w: UDP port %d out of range", ErrBadConfig, cfg.UDPPort)
	}
	for _, ip := range cfg.AnnounceIPs {
		if net.ParseIP(ip) == nil {
			return cfg, fmt.Errorf("%w: announce address %q is not an IP address", ErrBadConfig, ip)
		}
	}
	turn := false
	for _, u := range cfg.ICEURLs {
		scheme, rest, ok := strings.Cut(u, ":")
		switch {
		case !ok || rest == "" || strings.HasPrefix(rest, "//"):
			return cfg, fmt.Errorf("%w: ICE URL %q: want scheme:host[:port]", ErrBadConfig, u)
		case scheme == "stun" || scheme == "stuns":
		case scheme == "turn" || scheme == "turns":
			turn = true
		default:
			return cfg, fmt.Errorf("%w: ICE URL %q: scheme must be stun, stuns, turn or turns", ErrBadConfig, u)
		}
	}
	if turn && (cfg.TURNUsername == "" || cfg.TURNCredential == "") {
		return cfg, fmt.Errorf("%w: TURN URLs need a username and a credential", ErrBadConfig)
	}
	return cfg, nil
}
