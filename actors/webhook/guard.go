package webhook

import (
	"context"
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
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use IPv4/IPv6 translation
	netip.MustParsePrefix("2001:db8::/32"),  // documentation
}

// addrAllowed reports whether a webhook may be posted to ip when private
// endpoints are not allowed.
func addrAllowed(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
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

// NewClient returns the HTTP client a Deliverer uses by default. Unless
// allowPrivate, its dialer refuses every address addrAllowed refuses. It uses
// no proxy (a proxy would dial on our behalf, past the check) and follows no
// redirects: a 3xx is an unsuccessful delivery, retried like any other, so
// that a signed body never goes anywhere but the configured endpoint.
func NewClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = refusePrivate
	}
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
// configuration names it: the URL's shape, and, unless allowPrivate, that
// every address its host resolves to now is public. It returns an error
// wrapping ErrInvalidEndpoint or ErrForbiddenAddress, or the resolver's
// error. Deliveries check again at each dial, since what a name resolves to
// can change.
func CheckEndpoint(ctx context.Context, endpoint string, allowPrivate bool) error {
	u, err := parseEndpoint(endpoint)
	if err != nil || allowPrivate {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !addrAllowed(ip) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, ip)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("webhook: resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if !addrAllowed(ip) {
			return fmt.Errorf("%w: %s resolves to %s", ErrForbiddenAddress, host, ip)
		}
	}
	return nil
}
