package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// This file owns the client's address: what the limits per address (public
// join tokens, WHIP and WHEP offers, pending signaling sockets), the
// idempotency keys of the unauthenticated POSTs and the logs key on.

// ParseTrustedProxies parses Config.TrustedProxies: IP addresses and
// networks in CIDR notation ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7").
// A list whose networks together hold every IPv4 or every IPv6 address
// (0.0.0.0/0, or 0.0.0.0/1 and 128.0.0.0/1) is refused: it would let any
// client choose the address it is counted under.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("%q: not an IP address or a network in CIDR notation", s)
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q: not an IP address or a network in CIDR notation", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = unmapPrefix(p).Masked()
		if p.Bits() == 0 {
			return nil, fmt.Errorf("%q: trusts every address, so any client could choose its own: list the proxies' addresses", s)
		}
		out = append(out, p)
	}
	for _, all := range []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0)} {
		if !covered(all, out) {
			continue
		}
		var nets []string
		for _, p := range out {
			if p.Addr().Is4() == all.Addr().Is4() {
				nets = append(nets, p.String())
			}
		}
		return nil, fmt.Errorf("%s: together trust every address, so any client could choose its own: list the proxies' addresses", strings.Join(nets, ", "))
	}
	return out, nil
}

// covered reports whether the networks of set together hold every
// address of p. It halves p only where a network lies strictly inside
// it, so it visits at most a few nodes per network and bit.
func covered(p netip.Prefix, set []netip.Prefix) bool {
	inside := false
	for _, q := range set {
		if !q.Overlaps(p) {
			continue
		}
		if q.Bits() <= p.Bits() {
			return true // q holds p
		}
		inside = true
	}
	if !inside || p.Bits() == p.Addr().BitLen() {
		return false
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	return covered(lo, set) && covered(halfAfter(lo), set)
}

// halfAfter is the network of p's size that follows p: the other half of
// the network p is the first half of.
func halfAfter(p netip.Prefix) netip.Prefix {
	b := p.Addr().AsSlice()
	bit := p.Bits() - 1
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits())
}

// The values of Config.TrustedProxyHeader: the header the trusted proxies
// write the client's address in.
const (
	ProxyHeaderXForwardedFor = "x-forwarded-for"
	ProxyHeaderForwarded     = "forwarded"
)

// CheckTrustedProxyHeader checks a Config.TrustedProxyHeader.
func CheckTrustedProxyHeader(h string) error {
	_, err := parseProxyHeader(h)
	return err
}

// parseProxyHeader is h as one of the ProxyHeader constants, in any case;
// empty is ProxyHeaderXForwardedFor.
func parseProxyHeader(h string) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(h)); v {
	case "":
		return ProxyHeaderXForwardedFor, nil
	case ProxyHeaderXForwardedFor, ProxyHeaderForwarded:
		return v, nil
	}
	return "", fmt.Errorf("%q: must be %s or %s, the header the trusted proxies write", h, ProxyHeaderXForwardedFor, ProxyHeaderForwarded)
}

// unmapPrefix turns an IPv4-mapped IPv6 network (::ffff:10.0.0.0/104) into
// its IPv4 one, as addresses are unmapped before they are matched.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// trustedProxies is the parsed Config.TrustedProxies.
type trustedProxies []netip.Prefix

func (tp trustedProxies) trusts(a netip.Addr) bool {
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address of the client that sent r (clientIP), as
// text for the logs: r.RemoteAddr as is if it is not an IP peer.
func (s *Server) clientAddr(r *http.Request) string {
	if a := s.clientIP(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}

// clientKey is what the limits per client address count r under: the
// client's address, or for IPv6 its /64, which one host usually holds
// whole; r.RemoteAddr as is if it is not an IP peer.
func (s *Server) clientKey(r *http.Request) string {
	a := s.clientIP(r)
	switch {
	case !a.IsValid():
		return r.RemoteAddr
	case a.Is6():
		a = netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a.String()
}

// clientIP is the address of the client that sent r. It is r's direct
// peer unless that peer is a trusted proxy: then it is the right-most
// address of X-Forwarded-For (or, with Config.TrustedProxyHeader
// "forwarded", of Forwarded's for= parameters) that is not itself a
// trusted proxy. The other header is never read: a proxy that writes one
// passes on what the client wrote in the other. Each proxy appends
// the address it got the request from, so the addresses right of the first
// untrusted one were written by trusted proxies and the rest, which a
// client may have sent, are not read. When every address is trusted, or
// one cannot be read (a proxy's "unknown"), the last address vouched for
// is the client. Headers from an untrusted peer are never read: a client
// cannot choose its own address. It is invalid if r's peer is not an IP
// one (a test's or a unix socket's).
func (s *Server) clientIP(r *http.Request) netip.Addr {
	peer, err := parseHop(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	if !s.proxies.trusts(peer) {
		return peer
	}
	var hops []string
	if s.proxyFwd {
		hops = r.Header.Values("Forwarded")
	} else {
		hops = r.Header.Values("X-Forwarded-For")
	}
	client := peer
	var elems []string
	for _, h := range hops {
		if s.proxyFwd {
			elems = append(elems, forwardedElements(h)...)
		} else {
			// X-Forwarded-For has no quoted strings: a client's stray
			// quote must not join its element to the proxy's.
			elems = append(elems, strings.Split(h, ",")...)
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if s.proxyFwd {
			e = forwardedFor(e)
		}
		a, err := parseHop(e)
		if err != nil {
			break
		}
		client = a
		if !s.proxies.trusts(a) {
			break
		}
	}
	return client
}

var errBadHop = errors.New("not an IP address")

// parseHop reads an address as proxies write them: an IPv4 or IPv6
// address, bracketed or not, with or without a port. A zone is dropped
// and an IPv4-mapped IPv6 address unmapped.
func parseHop(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
			if a, err = netip.ParseAddr(s); err != nil {
				return netip.Addr{}, errBadHop
			}
		} else {
			a = ap.Addr()
		}
	}
	return a.WithZone("").Unmap(), nil
}

// forwardedFor is the for= parameter of one element of a Forwarded header
// (RFC 7239: `for=192.0.2.60;proto=http;by=203.0.113.43`), unquoted; empty
// if it has none.
func forwardedFor(elem string) string {
	pairs, _ := splitQuoted(elem, ';')
	for _, pair := range pairs {
		name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "for") {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = strings.ReplaceAll(value[1:len(value)-1], `\`, "")
		}
		return value
	}
	return ""
}

// forwardedElements splits one Forwarded header line into its elements.
// A line that ends inside a quoted string is split at every comma
// instead: a client's unclosed quote (`for="`) would otherwise swallow
// the elements the proxies appended after it, its own among them.
func forwardedElements(h string) []string {
	elems, closed := splitQuoted(h, ',')
	if !closed {
		return strings.Split(h, ",")
	}
	return elems
}

// splitQuoted splits s at each sep outside a quoted string; closed is
// false if s ends inside one.
func splitQuoted(s string, sep byte) (out []string, closed bool) {
	quoted, escaped, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:]), !quoted
}
