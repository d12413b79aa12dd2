package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors/webhook/webhooktest"
)

func TestCheckEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dns := webhooktest.NewDNS(t, map[string][]netip.Addr{
		"public.troupe.test":   {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("2606:4700::1111")},
		"loop.troupe.test":     {netip.MustParseAddr("127.0.0.1")},
		"mixed.troupe.test":    {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("10.0.0.7")},
		"metadata.troupe.test": {netip.MustParseAddr("fd00:ec2::254")},
	})
	tests := []struct {
		url          string
		allowPrivate bool
		want         error
	}{
		{"https://93.184.215.14/hook", false, nil},
		{"https://[2606:4700::1111]/hook", false, nil},
		{"https://public.troupe.test/hook", false, nil},
		{"http://127.0.0.1:8080/hook", false, ErrForbiddenAddress},
		{"http://127.0.0.1:8080/hook", true, nil},
		{"http://loop.troupe.test/hook", false, ErrForbiddenAddress},
		{"http://loop.troupe.test/hook", true, nil},
		{"http://mixed.troupe.test/hook", false, ErrForbiddenAddress},
		{"http://metadata.troupe.test/hook", false, ErrForbiddenAddress},
		{"http://10.1.2.3/hook", false, ErrForbiddenAddress},
		{"http://172.16.0.1/hook", false, ErrForbiddenAddress},
		{"http://192.168.1.1/hook", false, ErrForbiddenAddress},
		{"http://169.254.169.254/latest/meta-data", false, ErrForbiddenAddress},
		{"http://100.64.0.1/hook", false, ErrForbiddenAddress},
		{"http://0.0.0.0/hook", false, ErrForbiddenAddress},
		{"http://[::1]/hook", false, ErrForbiddenAddress},
		{"http://[::ffff:127.0.0.1]/hook", false, ErrForbiddenAddress},
		{"http://[fd00:ec2::254]/hook", false, ErrForbiddenAddress},
		{"http://[fe80::1]/hook", false, ErrForbiddenAddress},
		{"http://[fec0::1]/hook", false, ErrForbiddenAddress},
		{"http://[::]/hook", false, ErrForbiddenAddress},
		{"http://224.0.0.1/hook", false, ErrForbiddenAddress},
		{"ftp://93.184.215.14/hook", false, ErrInvalidEndpoint},
		{"https://u:p@93.184.215.14/hook", true, ErrInvalidEndpoint},
		{"https:///hook", false, ErrInvalidEndpoint},
		{"://bad", true, ErrInvalidEndpoint},
	}
	for _, tt := range tests {
		err := Guard{AllowPrivate: tt.allowPrivate, Resolver: dns.Resolver()}.CheckEndpoint(ctx, tt.url)
		if (tt.want == nil && err != nil) || !errors.Is(err, tt.want) {
			t.Errorf("CheckEndpoint(%q, %v) = %v, want %v", tt.url, tt.allowPrivate, err, tt.want)
		}
	}
}

// An endpoint whose host does not resolve is refused with a message about
// the endpoint: the resolver's own message names the resolver's address,
// which is none of an API client's business.
func TestCheckEndpointUnresolvable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dns := webhooktest.NewDNS(t, nil)
	err := Guard{Resolver: dns.Resolver()}.CheckEndpoint(ctx, "https://gone.troupe.test/hook")
	var re *ResolveError
	if !errors.As(err, &re) || !re.NotFound {
		t.Fatalf("CheckEndpoint = %#v, want a *ResolveError for a name that does not exist", err)
	}
	if got, want := err.Error(), "webhook: endpoint host gone.troupe.test does not resolve"; got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || dnsErr.Server == "" {
		t.Fatalf("the resolver's own error %v is not kept for the logs", dnsErr)
	}
	if strings.Contains(err.Error(), dnsErr.Server) {
		t.Errorf("error text %q names the resolver", err)
	}

	// A resolver that cannot be reached: the lookup failed, the name may
	// well exist.
	down := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("resolver unreachable")
	}}
	err = Guard{Resolver: down}.CheckEndpoint(ctx, "https://hooks.troupe.test/hook")
	if !errors.As(err, &re) || re.NotFound {
		t.Fatalf("CheckEndpoint with the resolver down = %#v, want a *ResolveError, not NotFound", err)
	}
	if got, want := err.Error(), "webhook: endpoint host hooks.troupe.test could not be resolved; try again later"; got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
}

// embeddedCases are IPv6 addresses that stand for an IPv4 one, and whether
// a webhook may go to them without AllowPrivate.
var embeddedCases = []struct {
	addr    string
	allowed bool
	why     string
}{
	{"64:ff9b::7f00:1", false, "NAT64 of 127.0.0.1"},
	{"64:ff9b::a9fe:a9fe", false, "NAT64 of 169.254.169.254"},
	{"64:ff9b::a00:1", false, "NAT64 of 10.0.0.1"},
	{"64:ff9b::808:808", true, "NAT64 of 8.8.8.8"},
	{"64:ff9b:1::808:808", false, "local-use NAT64 prefix"},
	{"2002:7f00:1::", false, "6to4 of 127.0.0.1"},
	{"2002:a9fe:a9fe::1", false, "6to4 of 169.254.169.254"},
	{"2002:c0a8:101:1::1", false, "6to4 of 192.168.1.1"},
	{"2002:808:808::", true, "6to4 of 8.8.8.8"},
	{"::127.0.0.1", false, "IPv4-compatible 127.0.0.1"},
	{"::10.1.2.3", false, "IPv4-compatible 10.1.2.3"},
	{"::8.8.8.8", true, "IPv4-compatible 8.8.8.8"},
	{"::ffff:0:7f00:1", false, "SIIT of 127.0.0.1"},
	{"::ffff:0:c0a8:101", false, "SIIT of 192.168.1.1"},
	{"::ffff:0:808:808", true, "SIIT of 8.8.8.8"},
	{"::ffff:169.254.169.254", false, "IPv4-mapped 169.254.169.254"},
	{"::ffff:8.8.8.8", true, "IPv4-mapped 8.8.8.8"},
	{"2001:0:4136:e378:8000:63bf:80ff:fffe", false, "Teredo, client 127.0.0.1"},
	{"2001:0:4136:e378:8000:63bf:f5ff:fffe", false, "Teredo, client 10.0.0.1"},
	{"2001:0:a00:1:8000:63bf:f7f7:f7f7", false, "Teredo, server 10.0.0.1"},
	{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", true, "Teredo, server 65.54.227.120, client 8.8.8.8"},
	{"2606:4700::1111", true, "no IPv4 inside"},
}

// An IPv6 address that leads to an IPv4 one is judged by that IPv4
// address: when an endpoint is set, as a literal or as what its name
// resolves to, and by the dialer's check. Nothing is dialed.
func TestEmbeddedIPv4Judged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hosts := map[string][]netip.Addr{}
	for i, c := range embeddedCases {
		hosts[hostFor(i)] = []netip.Addr{netip.MustParseAddr(c.addr)}
	}
	g := Guard{Resolver: webhooktest.NewDNS(t, hosts).Resolver()}
	for i, c := range embeddedCases {
		for _, endpoint := range []string{"https://[" + c.addr + "]/hook", "https://" + hostFor(i) + "/hook"} {
			err := g.CheckEndpoint(ctx, endpoint)
			if c.allowed && err != nil || !c.allowed && !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("%s: CheckEndpoint(%s) = %v, want allowed %v", c.why, endpoint, err, c.allowed)
			}
		}
		err := refusePrivate("tcp6", "["+c.addr+"]:443", nil)
		if c.allowed && err != nil || !c.allowed && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: the dialer's check = %v, want allowed %v", c.why, err, c.allowed)
		}
	}
}

func hostFor(i int) string { return "case" + string(rune('a'+i)) + ".troupe.test" }

// errFence stops a dial that the guard let through, so that the test
// never connects anywhere.
var errFence = errors.New("test fence: not dialing")

// The client's dialer judges the address a name resolves to when it dials,
// so a name that resolves to an IPv6 address embedding a private IPv4 one
// is refused then too. A fence behind the guard stops every dial it allows.
func TestClientRefusesEmbeddedPrivate(t *testing.T) {
	hosts := map[string][]netip.Addr{}
	for i, c := range embeddedCases {
		hosts[hostFor(i)] = []netip.Addr{netip.MustParseAddr(c.addr)}
	}
	g := Guard{Resolver: webhooktest.NewDNS(t, hosts).Resolver()}
	dialer := g.dialer()
	guard := dialer.Control
	var mu sync.Mutex
	fenced := map[string]bool{}
	dialer.Control = func(network, address string, c syscall.RawConn) error {
		if err := guard(network, address, c); err != nil {
			return err
		}
		mu.Lock()
		fenced[address] = true
		mu.Unlock()
		return errFence
	}
	client := clientFor(dialer)
	defer client.CloseIdleConnections()
	for i, c := range embeddedCases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hostFor(i)+"/hook", nil)
		_, err := client.Do(req)
		cancel()
		if c.allowed && !errors.Is(err, errFence) || !c.allowed && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("%s: posting to %s = %v, want allowed %v", c.why, hostFor(i), err, c.allowed)
		}
	}
	for a := range fenced {
		ap := netip.MustParseAddrPort(a)
		for _, c := range embeddedCases {
			if !c.allowed && ap.Addr() == netip.MustParseAddr(c.addr) {
				t.Errorf("the guard let %s through", a)
			}
		}
	}
}
