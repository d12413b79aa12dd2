package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Address ranges refused besides those netip classifies (loopback, private
// and unique-local, link-local, multicast, unspecified): none of them is a
// public web server, and some reach inside the operator's network.
var forbiddenPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),  // carrier-grade NAT, often internal
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use IPv4/IPv6 translation, any embedding
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
	netip.MustParsePrefix("fec0::/10"),      // site-local: deprecated, still routed inside some sites
}

// IPv6 ranges whose addresses stand for an IPv4 address: a packet sent to
// one reaches that IPv4 address through a translator or a tunnel, so it is
// that address that must be public.
var (
	ipv4Compatible = netip.MustParsePrefix("::/96")           // deprecated, still routed by some stacks
	ipv4Mapped     = netip.MustParsePrefix("::ffff:0:0/96")   // the socket API's own
	ipv4Translated = netip.MustParsePrefix("::ffff:0:0:0/96") // SIIT (RFC 2765)
	nat64          = netip.MustParsePrefix("64:ff9b::/96")    // NAT64 well-known prefix (RFC 6052)
	sixToFour      = netip.MustParsePrefix("2002::/16")       // 6to4 (RFC 3056): the IPv4 address follows the prefix
	teredo         = netip.MustParsePrefix("2001::/32")       // Teredo (RFC 4380): server, then the client inverted
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address leads to, or
// nothing for an address of no translation or tunnelling scheme.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() {
		return nil
	}
	b := ip.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	switch {
	case ipv4Compatible.Contains(ip), ipv4Mapped.Contains(ip), ipv4Translated.Contains(ip), nat64.Contains(ip):
		return []netip.Addr{last}
	case sixToFour.Contains(ip):
		return []netip.Addr{netip.AddrFrom4([4]byte(b[2:6]))}
	case teredo.Contains(ip):
		client := [4]byte(b[12:16])
		for i := range client {
			client[i] ^= 0xff
		}
		return []netip.Addr{netip.AddrFrom4([4]byte(b[4:8])), netip.AddrFrom4(client)}
	}
	return nil
}

// PublicAddr reports whether ip is an address of the public internet:
// one a webhook may be posted to when private endpoints are not allowed,
// and one an unauthenticated listener (--metrics-addr) must not bind.
// Loopback, private, shared, link-local, multicast, unspecified and
// reserved addresses are not, nor an IPv6 address that stands for an
// IPv4 one that is not.
func PublicAddr(ip netip.Addr) bool { return addrAllowed(ip) }

// addrAllowed reports whether a webhook may be posted to ip when private
// endpoints are not allowed.
func addrAllowed(ip netip.Addr) bool {
	ip = ip.WithZone("") // a zone changes no range, but prefixes never contain a zoned address
	if v4s := embeddedIPv4(ip); v4s != nil {
		for _, v4 := range v4s {
			if !addrAllowed(v4) {
				return false
			}
		}
		return true
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// refusePrivate is a net.Dialer Control function: it runs after name
// resolution, on the address actually dialed, so a name that resolves to a
// public address when checked and to a private one when dialed (DNS
// rebinding) is still refused.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrForbiddenAddress, address)
	}
	if !addrAllowed(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// Guard decides which endpoints webhooks may reach. The zero value refuses
// every address addrAllowed refuses and resolves names with
// net.DefaultResolver.
type Guard struct {
	// AllowPrivate lets webhooks reach loopback and private addresses
	// (--webhook-allow-private).
	AllowPrivate bool
	// Resolver resolves endpoint host names, both when an endpoint is
	// checked and when a delivery dials it; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

func (g Guard) resolver() *net.Resolver {
	if g.Resolver == nil {
		return net.DefaultResolver
	}
	return g.Resolver
}

// dialer is the dialer of Client. Unless AllowPrivate, its Control hook
// judges every address actually dialed.
func (g Guard) dialer() *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: g.Resolver}
	if !g.AllowPrivate {
		d.Control = refusePrivate
	}
	return d
}

// Client returns the HTTP client a Deliverer uses by default. Unless
// AllowPrivate, its dialer refuses every address addrAllowed refuses. It uses
// no proxy (a proxy would dial on our behalf, past the check) and follows no
// redirects: a 3xx is an unsuccessful delivery, retried like any other, so
// that a signed body never goes anywhere but the configured endpoint.
func (g Guard) Client() *http.Client { return clientFor(g.dialer()) }

func clientFor(dialer *net.Dialer) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// NewClient is Guard{AllowPrivate: allowPrivate}.Client().
func NewClient(allowPrivate bool) *http.Client { return Guard{AllowPrivate: allowPrivate}.Client() }

// parseEndpoint checks that raw is an absolute http or https URL with a host
// and no credentials.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEndpoint, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: %q is not an absolute http or https URL", ErrInvalidEndpoint, raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: credentials in the URL", ErrInvalidEndpoint)
	}
	return u, nil
}

// CheckEndpoint validates a webhook endpoint when a room or the
// configuration names it: the URL's shape, and, unless AllowPrivate, that
// every address its host resolves to now is public. It returns an error
// wrapping ErrInvalidEndpoint or ErrForbiddenAddress, or a *ResolveError.
// Deliveries check again at each dial, since what a name resolves to can
// change.
func (g Guard) CheckEndpoint(ctx context.Context, endpoint string) error {
	u, err := parseEndpoint(endpoint)
	if err != nil || g.AllowPrivate {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !addrAllowed(ip) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, ip)
		}
		return nil
	}
	ips, err := g.resolver().LookupNetIP(ctx, "ip", host)
	if err != nil {
		return resolveError(host, err)
	}
	for _, ip := range ips {
		if !addrAllowed(ip) {
			return fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddress, host, ip)
		}
	}
	return nil
}

// CheckEndpoint is Guard{AllowPrivate: allowPrivate}.CheckEndpoint.
func CheckEndpoint(ctx context.Context, endpoint string, allowPrivate bool) error {
	return Guard{AllowPrivate: allowPrivate}.CheckEndpoint(ctx, endpoint)
}

// ResolveError is the error of an endpoint whose host name did not
// resolve. Its text says what is wrong with the endpoint and nothing of the
// resolver's own message, which names the resolver's address: it reaches
// API clients (a 422, a failed delivery's last_error).
type ResolveError struct {
	Host string
	// NotFound: the name does not exist, or has no address. Otherwise the
	// lookup failed (a timeout, a failing server) and may succeed later.
	NotFound bool
	// Err is the resolver's error, for the server's own logs.
	Err error
}

func (e *ResolveError) Error() string {
	if e.NotFound {
		return fmt.Sprintf("webhook: endpoint host %s does not resolve", e.Host)
	}
	return fmt.Sprintf("webhook: endpoint host %s could not be resolved; try again later", e.Host)
}

func (e *ResolveError) Unwrap() error { return e.Err }

// resolveError describes a lookup of host that failed with err.
func resolveError(host string, err error) *ResolveError {
	var dnsErr *net.DNSError
	notFound := errors.As(err, &dnsErr) && dnsErr.IsNotFound
	return &ResolveError{Host: host, NotFound: notFound, Err: err}
}
