package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
)

// clientAddrCase is a request from peer with headers, sent by the client
// at want.
type clientAddrCase struct {
	name, peer string
	headers    [][2]string
	want       string
}

// The client's address is the peer's unless the peer is a trusted proxy;
// then it is the right-most forwarded address that is not a trusted proxy,
// read from the one header the proxies write.
func TestClientAddr(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8:ffff::/48", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	xff := []clientAddrCase{
		{"no header", "198.51.100.1:4000", nil, "198.51.100.1"},
		{"untrusted peer's header ignored", "198.51.100.1:4000", [][2]string{{"X-Forwarded-For", "203.0.113.9"}}, "198.51.100.1"},
		{"untrusted IPv6 peer", "[2001:db8:1::5]:4000", [][2]string{{"X-Forwarded-For", "203.0.113.9"}}, "2001:db8:1::5"},
		{"trusted proxy without header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"trusted proxy", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "203.0.113.9"}}, "203.0.113.9"},
		{"a client's spoofed entry left of the real one", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", "1.1.1.1, 203.0.113.9"}}, "203.0.113.9"},
		{"a chain of trusted proxies", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", "1.1.1.1, 203.0.113.9, 192.0.2.7, 10.9.9.9"}}, "203.0.113.9"},
		{"the header in several lines", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", "1.1.1.1, 203.0.113.9"}, {"X-Forwarded-For", "10.9.9.9"}}, "203.0.113.9"},
		{"every hop trusted", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "10.7.7.7, 192.0.2.7"}}, "10.7.7.7"},
		{"an unknown hop stops at the last trusted one", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", "203.0.113.9, unknown, 10.5.5.5"}}, "10.5.5.5"},
		{"junk from the trusted proxy", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "not an address"}}, "10.1.2.3"},
		{"an empty header", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", ""}}, "10.1.2.3"},
		{"an address with a port", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "203.0.113.9:5555"}}, "203.0.113.9"},
		{"IPv6 client", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "2001:db8:1::7"}}, "2001:db8:1::7"},
		{"bracketed IPv6 client with a port", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "[2001:db8:1::7]:443"}}, "2001:db8:1::7"},
		{"IPv6 trusted proxy", "[2001:db8:ffff::1]:4000", [][2]string{{"X-Forwarded-For", "2001:db8:1::7, 2001:db8:ffff:1::2"}}, "2001:db8:1::7"},
		{"IPv4-mapped peer and proxy network", "[::ffff:172.16.0.9]:4000", [][2]string{{"X-Forwarded-For", "::ffff:203.0.113.9"}}, "203.0.113.9"},
		// A client's stray quote, which the proxy appends to, must not join
		// the proxy's element to the client's (and make the proxy the client).
		{"X-Forwarded-For has no quoted strings", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", `", 203.0.113.9`}}, "203.0.113.9"},
		{"X-Forwarded-For quoted comma", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", `"1.1.1.1, 2.2.2.2", 203.0.113.9, 10.9.9.9`}}, "203.0.113.9"},
		// Forwarded is what the client sent, passed on.
		{"Forwarded never read", "10.1.2.3:4000", [][2]string{{"Forwarded", "for=6.6.6.6"}}, "10.1.2.3"},
		{"Forwarded beside X-Forwarded-For", "10.1.2.3:4000",
			[][2]string{{"Forwarded", "for=6.6.6.6"}, {"X-Forwarded-For", "203.0.113.9"}}, "203.0.113.9"},
	}
	fwd := []clientAddrCase{
		{"untrusted peer's Forwarded ignored", "198.51.100.1:4000", [][2]string{{"Forwarded", "for=203.0.113.9"}}, "198.51.100.1"},
		{"Forwarded", "10.1.2.3:4000",
			[][2]string{{"Forwarded", `for=1.1.1.1, for="[2001:db8:1::7]:4711";proto=https, For=10.9.9.9;by=10.0.0.1`}}, "2001:db8:1::7"},
		{"Forwarded quoted pair with a comma", "10.1.2.3:4000",
			[][2]string{{"Forwarded", `for=1.1.1.1;host="a,b", for=203.0.113.9`}}, "203.0.113.9"},
		{"Forwarded obfuscated hop", "10.1.2.3:4000", [][2]string{{"Forwarded", `for=203.0.113.9, for=_hidden`}}, "10.1.2.3"},
		{"Forwarded element without for", "10.1.2.3:4000", [][2]string{{"Forwarded", `for=203.0.113.9, proto=https`}}, "10.1.2.3"},
		{"Forwarded unclosed quote", "10.1.2.3:4000", [][2]string{{"Forwarded", `for=", for=203.0.113.9`}}, "203.0.113.9"},
		{"Forwarded unclosed escaped quote", "10.1.2.3:4000",
			[][2]string{{"Forwarded", `for="\", for="[2001:db8:1::7]:443", for=10.9.9.9`}}, "2001:db8:1::7"},
		{"Forwarded unclosed quote on a line of its own", "10.1.2.3:4000",
			[][2]string{{"Forwarded", `for="1.1.1.1`}, {"Forwarded", `for=203.0.113.9`}}, "203.0.113.9"},
		// X-Forwarded-For is what the client sent, passed on.
		{"X-Forwarded-For never read", "10.1.2.3:4000", [][2]string{{"X-Forwarded-For", "6.6.6.6"}}, "10.1.2.3"},
		{"X-Forwarded-For beside Forwarded", "10.1.2.3:4000",
			[][2]string{{"X-Forwarded-For", "6.6.6.6"}, {"Forwarded", "for=203.0.113.9"}}, "203.0.113.9"},
	}
	for _, mode := range []struct {
		header string
		cases  []clientAddrCase
	}{{"", xff}, {"X-Forwarded-For", xff}, {"forwarded", fwd}} {
		h, err := parseProxyHeader(mode.header)
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{proxies: proxies, proxyFwd: h == ProxyHeaderForwarded}
		for _, tc := range mode.cases {
			t.Run(mode.header+"/"+tc.name, func(t *testing.T) {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.RemoteAddr = tc.peer
				for _, h := range tc.headers {
					r.Header.Add(h[0], h[1])
				}
				if got := s.clientAddr(r); got != tc.want {
					t.Fatalf("client %q, want %q", got, tc.want)
				}
			})
		}
	}
	if got := (&Server{}).clientAddr(&http.Request{RemoteAddr: "10.1.2.3:1", Header: http.Header{"X-Forwarded-For": {"203.0.113.9"}}}); got != "10.1.2.3" {
		t.Fatalf("no trusted proxies: client %q", got)
	}
	if got := (&Server{}).clientAddr(&http.Request{RemoteAddr: "pipe"}); got != "pipe" {
		t.Fatalf("a peer that is not an IP one: client %q", got)
	}
}

// The limits count a client by its address, an IPv6 one by its /64, from
// the address clientAddr found.
func TestClientKey(t *testing.T) {
	proxies, err := ParseTrustedProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{proxies: proxies}
	for _, tc := range []struct{ peer, xff, want string }{
		{"192.0.2.7:1", "", "192.0.2.7"},
		{"[2001:db8::1]:1", "", "2001:db8::"},
		{"[2001:db8:0:0:ffff::2]:1", "", "2001:db8::"},
		{"[2001:db8:0:1::2]:1", "", "2001:db8:0:1::"},
		{"[::ffff:192.0.2.7]:1", "", "192.0.2.7"},
		{"10.1.2.3:1", "2001:db8:5::9", "2001:db8:5::"},
		{"10.1.2.3:1", "198.51.100.4", "198.51.100.4"},
		{"198.51.100.1:1", "2001:db8:5::9", "198.51.100.1"},
		{"pipe", "203.0.113.9", "pipe"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.clientKey(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: key %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
	for _, bad := range []string{"x-real-ip", "xff", "forwarded,x-forwarded-for"} {
		if err := CheckTrustedProxyHeader(bad); err == nil {
			t.Errorf("proxy header %q accepted", bad)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{" 10.1.2.3/8", "192.0.2.7", "2001:db8::1", "::ffff:10.0.0.0/104"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128", "10.0.0.0/8"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", "proxy.example", "10.0.0.0/33", "10.0.0.256", "fe80::1%eth0", "0.0.0.0/0", "::/0", "10.0.0.1:80"} {
		if _, err := ParseTrustedProxies([]string{"10.0.0.1", bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// Networks that hold every address of a family together are refused
	// as one holding them alone is; any gap, however small, is a list of
	// proxies.
	for _, tc := range []struct {
		list []string
		all  bool
	}{
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, true},
		{[]string{"::/1", "8000::/1", "10.0.0.0/8"}, true},
		{[]string{"128.0.0.0/1", "0.0.0.0/2", "2001:db8::/32", "64.0.0.0/3", "96.0.0.0/3"}, true},
		{[]string{"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
			"252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/9"}, true},
		{[]string{"::ffff:0.0.0.0/97", "128.0.0.0/1"}, true}, // mapped, then unmapped
		{[]string{"0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/4", "240.0.0.0/5", "248.0.0.0/6",
			"252.0.0.0/7", "254.0.0.0/8", "255.0.0.0/9", "255.128.0.0/10", "255.192.0.0/11", "255.255.255.254"}, false},
		{[]string{"0.0.0.0/1", "::/1", "8000::/2"}, false},
		{[]string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}, false},
	} {
		_, err := ParseTrustedProxies(tc.list)
		if tc.all && (err == nil || !strings.Contains(err.Error(), "every address")) {
			t.Errorf("%v: %v, want every address refused", tc.list, err)
		}
		if !tc.all && err != nil {
			t.Errorf("%v: %v", tc.list, err)
		}
	}
	st := newStack(t, nil)
	if _, err := New(Config{Rooms: st.rooms, Verifier: st.api.cfg.Verifier, SigningKey: st.key, TrustedProxies: []string{"nope"}}); err == nil {
		t.Fatal("New accepted a bad Config.TrustedProxies")
	}
	if _, err := New(Config{Rooms: st.rooms, Verifier: st.api.cfg.Verifier, SigningKey: st.key, TrustedProxyHeader: "x-real-ip"}); err == nil {
		t.Fatal("New accepted a bad Config.TrustedProxyHeader")
	}
}

// Through the server: the public join tokens' limit counts the address a
// trusted proxy forwarded, and ignores the header from any other peer.
func TestTrustedProxyLimits(t *testing.T) {
	noAuth := header{"Authorization", ""}
	xff := func(v string) header { return header{"X-Forwarded-For", v} }
	build := func(proxies []string, proxyHeader string) *stack {
		s := newStack(t, func(c *Config) {
			c.Clock = clock.NewManual(time.Now())
			c.PublicJoinRate = 1.0 / 60
			c.PublicJoinBurst = 1
			c.TrustedProxies = proxies
			c.TrustedProxyHeader = proxyHeader
		})
		s.createRoom(t, `{"id":"open","name":"Open","privacy":"public"}`)
		return s
	}

	// The test's client (127.0.0.1) is no trusted proxy: the header it
	// sends changes nothing, and its second token is refused.
	s := build([]string{"10.0.0.0/8"}, "")
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, xff("203.0.113.1")), http.StatusOK)
	r := s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, xff("203.0.113.2"))
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("a spoofed X-Forwarded-For got a second token: %d %s", r.status, r.body)
	}

	// Behind a trusted proxy each forwarded client has a budget of its own.
	s = build([]string{"127.0.0.1", "::1"}, "")
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, xff("203.0.113.1")), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, xff("203.0.113.2")), http.StatusOK)
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, xff("[2001:db8::1]:443")), http.StatusOK)
	for _, h := range []header{
		xff("203.0.113.1"),
		xff("198.51.100.99, 203.0.113.2"), // a client's own entry, left of its real one
		xff("2001:db8::2"),                // the same /64
	} {
		if r := s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, h); r.status != http.StatusTooManyRequests {
			t.Fatalf("%s: %s: %d %s, want 429", h.name, h.value, r.status, r.body)
		}
	}
	// The proxy itself, forwarding nothing, is a client of its own.
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth), http.StatusOK)

	// Behind proxies that write Forwarded, the X-Forwarded-For they pass
	// on is the client's own and changes nothing.
	s = build([]string{"127.0.0.1", "::1"}, ProxyHeaderForwarded)
	fwd := func(v string) header { return header{"Forwarded", v} }
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, fwd(`for="[2001:db8::1]:443"`), xff("203.0.113.1")), http.StatusOK)
	for _, hs := range [][]header{
		{fwd("for=2001:db8::2"), xff("203.0.113.2")}, // the same /64
		{fwd(`for="[2001:db8::1]:443"`), xff("203.0.113.3")},
	} {
		if r := s.do(t, http.MethodPost, "/rooms/open/token", `{}`, append([]header{noAuth}, hs...)...); r.status != http.StatusTooManyRequests {
			t.Fatalf("%v: %d %s, want 429", hs, r.status, r.body)
		}
	}
	mustStatus(t, s.do(t, http.MethodPost, "/rooms/open/token", `{}`, noAuth, fwd("for=203.0.113.4"), xff("2001:db8::3")), http.StatusOK)
}
