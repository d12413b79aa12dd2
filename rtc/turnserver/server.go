package turnserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the zero Config fields.
const (
	DefaultRealm         = "troupe"
	DefaultCredentialTTL = 12 * time.Hour
	// DefaultMaxAllocationsPerUser bounds the relays of one user. A
	// browser makes one per TURN URL (UDP and TLS) and local network for
	// each peer connection, Chromium on a machine of two networks four,
	// and as many again while it restarts ICE (as after a network change)
	// before the old ones go: 16 lets a machine of four networks through
	// a restart.
	DefaultMaxAllocationsPerUser = 16
)

// ErrBadConfig wraps every Config that cannot be used.
var ErrBadConfig = errors.New("turnserver: invalid config")

// errNoCertificate: a TLS configuration that serves no certificate.
var errNoCertificate = errors.New("no certificate")

// Config configures a Server.
type Config struct {
	// Secret signs and checks the credentials. Required.
	Secret []byte
	// Realm is the TURN realm. Default DefaultRealm.
	Realm string
	// BindAddr is the IP address the listeners and the relays bind to.
	// Required.
	BindAddr string
	// UDPPort is the TURN UDP port; 0 picks a free one.
	UDPPort int
	// TLS, if set, adds a TURN over TLS listener on TLSPort (0 picks a
	// free port) serving its certificate.
	TLS     *tls.Config
	TLSPort int
	// RelayIP is the address the relays are announced with: the server's
	// public address. Required.
	RelayIP string
	// Host is the host name or address the clients' URLs give. Default
	// RelayIP; a name the TLS certificate holds for turns: URLs.
	Host string
	// RelayPortMin and RelayPortMax bound the relays' ports (both set, or
	// neither: any free port).
	RelayPortMin, RelayPortMax int
	// CredentialTTL is how long the credentials handed out stay valid.
	// Default DefaultCredentialTTL.
	CredentialTTL time.Duration
	// MaxAllocationsPerUser bounds the relays one user holds at once.
	// Default DefaultMaxAllocationsPerUser.
	MaxAllocationsPerUser int
	// Peers are the only addresses a relay sends to: the media server's
	// own (see the package comment). Required.
	Peers []netip.AddrPort
	// LoggerFactory receives pion's logs; Logger Troupe's own.
	LoggerFactory logging.LoggerFactory
	Logger        *slog.Logger
}

// Validate reports the first field of cfg that cannot be used.
func (cfg Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
	}
	switch {
	case len(cfg.Secret) == 0:
		return bad("a secret is required")
	case net.ParseIP(cfg.BindAddr) == nil:
		return bad("bind address %q is not an IP address", cfg.BindAddr)
	case net.ParseIP(cfg.RelayIP) == nil || net.ParseIP(cfg.RelayIP).IsUnspecified():
		return bad("relay address %q is not an IP address a client can reach", cfg.RelayIP)
	case cfg.UDPPort < 0 || cfg.UDPPort > 65535:
		return bad("UDP port %d: must be 0..65535", cfg.UDPPort)
	case cfg.TLSPort < 0 || cfg.TLSPort > 65535:
		return bad("TLS port %d: must be 0..65535", cfg.TLSPort)
	case (cfg.RelayPortMin == 0) != (cfg.RelayPortMax == 0):
		return bad("relay port range %d-%d: set both ends or neither", cfg.RelayPortMin, cfg.RelayPortMax)
	case cfg.RelayPortMin < 0 || cfg.RelayPortMax > 65535 || cfg.RelayPortMin > cfg.RelayPortMax:
		return bad("relay port range %d-%d: want 1 <= min <= max <= 65535", cfg.RelayPortMin, cfg.RelayPortMax)
	case cfg.CredentialTTL < 0:
		return bad("credential TTL %v: must not be negative", cfg.CredentialTTL)
	case cfg.MaxAllocationsPerUser < 0:
		return bad("allocations per user %d: must not be negative", cfg.MaxAllocationsPerUser)
	case len(cfg.Peers) == 0:
		return bad("no peer address to relay to")
	}
	return nil
}

// Server is a running TURN server.
type Server struct {
	cfg     Config
	server  *turn.Server
	udp     net.PacketConn
	tls     net.Listener // nil without TLS
	log     *slog.Logger
	metrics *metrics

	mu sync.Mutex // guards the following
	// allocations counts each user's relays.
	allocations map[string]int
}

// New validates cfg, listens and serves until Close.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Realm == "" {
		cfg.Realm = DefaultRealm
	}
	if cfg.Host == "" {
		cfg.Host = cfg.RelayIP
	}
	if cfg.CredentialTTL == 0 {
		cfg.CredentialTTL = DefaultCredentialTTL
	}
	if cfg.MaxAllocationsPerUser == 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LoggerFactory == nil {
		cfg.LoggerFactory = logging.NewDefaultLoggerFactory()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), allocations: map[string]int{}}

	udpAddr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.UDPPort))
	udp, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("turnserver: listen on UDP %s: %w", udpAddr, err)
	}
	s.udp = udp
	relays := &relayGenerator{s: s}
	if err := relays.init(); err != nil {
		udp.Close()
		return nil, err
	}
	sc := turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: cfg.LoggerFactory,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		EventHandler: turn.EventHandler{
			// pion reports here the requests whose credentials were
			// accepted by authenticate but whose password was wrong.
			OnAuth: func(_, _ net.Addr, _, _, _, _ string, verdict bool) {
				if !verdict {
					s.metrics.refused.WithLabelValues("wrong_password").Inc()
				}
			},
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) { s.allocated(user, +1) },
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) { s.allocated(user, -1) },
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn: udp, RelayAddressGenerator: relays, PermissionHandler: s.permit,
		}},
	}
	if cfg.TLS != nil {
		tlsAddr := net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.TLSPort))
		tcp, err := net.Listen("tcp", tlsAddr)
		if err != nil {
			udp.Close()
			return nil, fmt.Errorf("turnserver: listen on TLS %s: %w", tlsAddr, err)
		}
		s.tls = tls.NewListener(newConnTracker(tcp), cfg.TLS)
		sc.ListenerConfigs = []turn.ListenerConfig{{
			Listener: s.tls, RelayAddressGenerator: relays, PermissionHandler: s.permit,
		}}
	}
	if s.server, err = turn.NewServer(sc); err != nil {
		udp.Close()
		if s.tls != nil {
			s.tls.Close()
		}
		return nil, fmt.Errorf("turnserver: %w", err)
	}
	tlsAddr := "off"
	if a := s.TLSAddr(); a != nil {
		tlsAddr = a.String()
	}
	s.log.Info("TURN server listening", "udp", udp.LocalAddr().String(), "tls", tlsAddr, "relay_ip", cfg.RelayIP)
	if cfg.TLS != nil {
		if err := certHolds(cfg.TLS, cfg.Host); err != nil {
			// Browsers check the certificate against the turns: URL's
			// host (Chromium gathers no relay over TLS then), so the TLS
			// port would relay for nobody: say so, as the likely cause
			// is an unset host, which defaults to the relay address.
			s.log.Warn("TURN over TLS: the certificate does not hold the host of the turns: URLs, so browsers will refuse it; set the TURN host to a name it holds",
				"host", cfg.Host, "err", err)
		}
	}
	return s, nil
}

// certHolds reports whether the certificate c serves for host is one for
// host (a name or an address).
func certHolds(c *tls.Config, host string) error {
	var cert *tls.Certificate
	switch {
	case c.GetCertificate != nil:
		hello := &tls.ClientHelloInfo{}
		if net.ParseIP(host) == nil {
			hello.ServerName = host // clients send no name for an address
		}
		var err error
		if cert, err = c.GetCertificate(hello); err != nil {
			return err
		}
	case len(c.Certificates) > 0:
		cert = &c.Certificates[0]
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return errNoCertificate
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return err
		}
	}
	return leaf.VerifyHostname(host)
}

// UDPAddr is the address of the TURN UDP port.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// TLSAddr is the address of the TURN over TLS port, or nil without TLS.
func (s *Server) TLSAddr() net.Addr {
	if s.tls == nil {
		return nil
	}
	return s.tls.Addr()
}

// ICEServers returns the server's URLs with credentials for user, valid
// for the configured TTL from now.
func (s *Server) ICEServers(user string) []webrtc.ICEServer {
	username, password := Credentials(s.cfg.Secret, user, time.Now().Add(s.cfg.CredentialTTL))
	udpPort := s.udp.LocalAddr().(*net.UDPAddr).Port
	urls := []string{"turn:" + net.JoinHostPort(s.cfg.Host, strconv.Itoa(udpPort)) + "?transport=udp"}
	if s.tls != nil {
		tlsPort := s.tls.Addr().(*net.TCPAddr).Port
		urls = append(urls, "turns:"+net.JoinHostPort(s.cfg.Host, strconv.Itoa(tlsPort))+"?transport=tcp")
	}
	return []webrtc.ICEServer{{URLs: urls, Username: username, Credential: password}}
}

// Collector returns the server's Prometheus metrics.
func (s *Server) Collector() prometheus.Collector { return s.metrics }

// Close stops the server and ends every relay.
func (s *Server) Close() error {
	// turn.Server.Close closes the listeners it was given.
	if err := s.server.Close(); err != nil {
		return fmt.Errorf("turnserver: close: %w", err)
	}
	return nil
}

// authenticate checks a request's credentials: a username of the
// time-limited scheme, not expired, whose key is derived from the secret.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	expires, user, ok := parseUsername(ra.Username)
	if !ok {
		s.metrics.refused.WithLabelValues("bad_username").Inc()
		s.log.Debug("TURN request refused: malformed username", "from", ra.SrcAddr.String())
		return "", nil, false
	}
	if !time.Now().Before(expires) {
		s.metrics.refused.WithLabelValues("expired").Inc()
		s.log.Debug("TURN request refused: credentials expired", "from", ra.SrcAddr.String(), "user", user)
		return "", nil, false
	}
	// A wrong password shows as a message integrity that does not match
	// this key; pion answers 401 for it.
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, passwordOf(s.cfg.Secret, ra.Username)), true
}

// quota admits an allocation while its user holds fewer than the maximum.
func (s *Server) quota(user, _ string, _ net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.allocations[user] >= s.cfg.MaxAllocationsPerUser {
		s.metrics.refused.WithLabelValues("quota").Inc()
		return false
	}
	return true
}

func (s *Server) allocated(user string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.allocations[user] + delta; n > 0 {
		s.allocations[user] = n
	} else {
		delete(s.allocations, user)
	}
	s.metrics.allocations.Add(float64(delta))
}

// permit admits a permission for a peer address the relay may send to:
// one of Peers' addresses (the relay checks the port, see relayConn).
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	if ip, ok := netip.AddrFromSlice(peer); ok {
		ip = ip.Unmap()
		for _, p := range s.cfg.Peers {
			if p.Addr().Unmap() == ip {
				return true
			}
		}
	}
	s.metrics.refused.WithLabelValues("peer").Inc()
	return false
}

// allowed reports whether a relay may send to addr: one of Peers.
func (s *Server) allowed(addr netip.AddrPort) bool {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	for _, p := range s.cfg.Peers {
		if netip.AddrPortFrom(p.Addr().Unmap(), p.Port()) == addr {
			return true
		}
	}
	return false
}
