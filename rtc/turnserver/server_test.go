package turnserver

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/syncbuf"
	"github.com/troupe-media/troupe/internal/testcert"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef")

// listenUDP is a UDP socket on loopback, closed when the test ends.
func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startServer starts a TURN server on loopback whose relays may send to
// peer only.
func startServer(t *testing.T, peer *net.UDPConn, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Secret: secret, BindAddr: "127.0.0.1", RelayIP: "127.0.0.1",
		Peers:  []netip.AddrPort{peer.LocalAddr().(*net.UDPAddr).AddrPort()},
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// allocate asks s for a relay with the credentials given.
func allocate(t *testing.T, s *Server, username, password string) (net.PacketConn, error) {
	t.Helper()
	conn := listenUDP(t)
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: s.UDPAddr().String(), STUNServerAddr: s.UDPAddr().String(),
		Username: username, Password: password, Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { relay.Close() })
	}
	return relay, err
}

// readFrom reads one datagram from c, with a bound against a hang.
func readFrom(t *testing.T, c net.PacketConn) ([]byte, net.Addr) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], from
}

func TestCredentialsScheme(t *testing.T) {
	expires := time.Unix(1_900_000_000, 0)
	username, password := Credentials(secret, "PA_alice", expires)
	if username != "1900000000:PA_alice" {
		t.Errorf("username %q", username)
	}
	// base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret
	// and pion's own handler compute it: the key pion derives for the
	// username is the one of this password.
	_, key, ok := turn.LongTermTURNRESTAuthHandler(string(secret), nil)(&turn.RequestAttributes{Username: username, Realm: "r"})
	if !ok || !bytes.Equal(key, turn.GenerateAuthKey(username, "r", password)) {
		t.Errorf("password %q is not the scheme's", password)
	}
	for _, bad := range []string{"", "PA_alice", "x:PA_alice", "1900000000:", "-5:u", "0:u"} {
		if _, _, ok := parseUsername(bad); ok {
			t.Errorf("username %q parsed", bad)
		}
	}
	if got, user, ok := parseUsername("1900000000:a:b"); !ok || user != "a:b" || !got.Equal(expires) {
		t.Errorf("username with a colon in the user: %v %q %v", got, user, ok)
	}
}

func TestRelayToTheMediaServerOnly(t *testing.T) {
	media, other := listenUDP(t), listenUDP(t)
	s := startServer(t, media, nil)
	username, password := Credentials(secret, "PA_alice", time.Now().Add(time.Hour))
	relay, err := allocate(t, s, username, password)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(s.metrics.allocations); got != 1 {
		t.Errorf("allocations gauge %v, want 1", got)
	}

	// The other socket shares the media server's address: the permission
	// is granted, but the relay drops what goes to its port.
	if _, err := relay.WriteTo([]byte("to another port"), other.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := relay.WriteTo([]byte("to the media port"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	got, from := readFrom(t, media)
	if string(got) != "to the media port" {
		t.Fatalf("media port got %q", got)
	}
	// One read loop relays a client's datagrams in order: the first was
	// handled before the second arrived.
	if n := testutil.ToFloat64(s.metrics.dropped); n != 1 {
		t.Errorf("dropped %v datagrams, want 1", n)
	}
	if _, err := media.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFrom(t, relay); string(got) != "back" {
		t.Fatalf("client got %q", got)
	}

	// Another address is refused its permission.
	if _, err := relay.WriteTo([]byte("elsewhere"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil {
		t.Error("permission to 127.0.0.2 granted")
	}
	if n := testutil.ToFloat64(s.metrics.refused.WithLabelValues("peer")); n < 1 {
		t.Errorf("refused peer %v, want at least 1", n)
	}
}

func TestWrongOrExpiredCredentialsRefused(t *testing.T) {
	media := listenUDP(t)
	s := startServer(t, media, nil)
	good, goodPassword := Credentials(secret, "PA_alice", time.Now().Add(time.Hour))
	expired, expiredPassword := Credentials(secret, "PA_alice", time.Now().Add(-time.Second))
	_, otherSecret := Credentials([]byte("another secret, another server!!"), "PA_alice", time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name, username, password, reason string
	}{
		{"wrong password", good, goodPassword + "x", "wrong_password"},
		{"signed with another secret", good, otherSecret, "wrong_password"},
		{"expired", expired, expiredPassword, "expired"},
		{"no expiry", "PA_alice", goodPassword, "bad_username"},
		{"expiry moved later", strings.Replace(expired, expired[:3], "999", 1), expiredPassword, "wrong_password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before float64
			if tc.reason != "" {
				before = testutil.ToFloat64(s.metrics.refused.WithLabelValues(tc.reason))
			}
			relay, err := allocate(t, s, tc.username, tc.password)
			if err == nil {
				relay.Close()
				t.Fatal("allocated")
			}
			if tc.reason != "" {
				if after := testutil.ToFloat64(s.metrics.refused.WithLabelValues(tc.reason)); after <= before {
					t.Errorf("refusal not counted as %s", tc.reason)
				}
			}
		})
	}
	if got := testutil.ToFloat64(s.metrics.allocations); got != 0 {
		t.Errorf("allocations gauge %v, want 0", got)
	}
}

func TestAllocationsPerUserBounded(t *testing.T) {
	media := listenUDP(t)
	s := startServer(t, media, func(c *Config) { c.MaxAllocationsPerUser = 2 })
	alice, alicePassword := Credentials(secret, "PA_alice", time.Now().Add(time.Hour))
	for range 2 {
		if _, err := allocate(t, s, alice, alicePassword); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := allocate(t, s, alice, alicePassword); err == nil {
		t.Fatal("a third relay for one user allocated")
	}
	if n := testutil.ToFloat64(s.metrics.refused.WithLabelValues("quota")); n != 1 {
		t.Errorf("quota refusals %v, want 1", n)
	}
	bob, bobPassword := Credentials(secret, "PA_bob", time.Now().Add(time.Hour))
	if _, err := allocate(t, s, bob, bobPassword); err != nil {
		t.Fatalf("another user's relay: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	peer := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:7882")}
	ok := Config{Secret: secret, BindAddr: "127.0.0.1", RelayIP: "127.0.0.1", Peers: peer}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no secret", func(c *Config) { c.Secret = nil }, "secret"},
		{"bind not an IP", func(c *Config) { c.BindAddr = "localhost" }, "bind address"},
		{"relay IP unspecified", func(c *Config) { c.RelayIP = "0.0.0.0" }, "relay address"},
		{"udp port", func(c *Config) { c.UDPPort = 70000 }, "UDP port"},
		{"half a range", func(c *Config) { c.RelayPortMin = 50000 }, "set both ends"},
		{"range reversed", func(c *Config) { c.RelayPortMin, c.RelayPortMax = 50010, 50000 }, "min <= max"},
		{"no peers", func(c *Config) { c.Peers = nil }, "no peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			err := cfg.Validate()
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadConfig with %q", err, tc.want)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A client that reaches the server over TLS only (turns:) gets a relay
// with the same credentials, and the URLs handed out name both listeners.
func TestRelayOverTLS(t *testing.T) {
	media := listenUDP(t)
	ca := testcert.NewCA(t)
	s := startServer(t, media, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{ca.TLSCertificate(t, 1)}, MinVersion: tls.VersionTLS12}
		c.Host = "127.0.0.1"
	})
	username, password := Credentials(secret, "PA_alice", time.Now().Add(time.Hour))
	servers := s.ICEServers("PA_alice")
	if len(servers) != 1 || len(servers[0].URLs) != 2 ||
		servers[0].URLs[0] != "turn:"+s.UDPAddr().String()+"?transport=udp" ||
		servers[0].URLs[1] != "turns:"+s.TLSAddr().String()+"?transport=tcp" ||
		!strings.HasSuffix(servers[0].Username, ":PA_alice") {
		t.Fatalf("ICE servers %+v", servers)
	}

	conn, err := tls.Dial("tcp", s.TLSAddr().String(), &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // the client does not close it
	c, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: s.TLSAddr().String(), STUNServerAddr: s.TLSAddr().String(),
		Username: username, Password: password, Conn: turn.NewSTUNConn(conn),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if _, err := relay.WriteTo([]byte("over TLS"), media.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readFrom(t, media); string(got) != "over TLS" {
		t.Fatalf("media port got %q", got)
	}
}

// A TLS port whose certificate does not hold the turns: URLs' host is
// reported at start: browsers refuse such a certificate, so the port
// would relay for nobody (Chromium gathers no relay over it).
func TestTLSHostNotInCertificateWarned(t *testing.T) {
	media := listenUDP(t)
	ca := testcert.NewCA(t) // its certificates hold 127.0.0.1
	for _, tc := range []struct {
		name, host string
		hook       bool // served by GetCertificate, as a server that reloads it does
		warned     bool
	}{
		{"the certificate's address", "127.0.0.1", false, false},
		{"the certificate's address, by a hook", "127.0.0.1", true, false},
		{"another name", "turn.example.com", false, true},
		{"another name, by a hook", "turn.example.com", true, true},
		{"another address", "192.0.2.7", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			cert := ca.TLSCertificate(t, 1)
			startServer(t, media, func(c *Config) {
				c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				if tc.hook {
					c.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, MinVersion: tls.VersionTLS12}
				}
				c.Host = tc.host
				c.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "host="+tc.host)
			if warned != tc.warned {
				t.Errorf("host %s: warned %v, want %v; logs:\n%s", tc.host, warned, tc.warned, logs)
			}
		})
	}
}
