package turnserver

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/turn/v5"
)

// errTCPRelay: a client asked for a TCP relay (RFC 6062), which this
// server does not make.
var errTCPRelay = errors.New("turnserver: TCP relays are not offered")

// relayGenerator makes UDP relays, on a port of the configured range if
// any, and wraps each so that it sends to the allowed peers only.
type relayGenerator struct {
	s     *Server
	inner turn.RelayAddressGenerator
}

func (g *relayGenerator) init() error {
	cfg := g.s.cfg
	relayIP := net.ParseIP(cfg.RelayIP)
	if cfg.RelayPortMin != 0 {
		g.inner = &turn.RelayAddressGeneratorPortRange{
			RelayAddress: relayIP, Address: cfg.BindAddr,
			MinPort: uint16(cfg.RelayPortMin), MaxPort: uint16(cfg.RelayPortMax),
		}
	} else {
		g.inner = &turn.RelayAddressGeneratorStatic{RelayAddress: relayIP, Address: cfg.BindAddr}
	}
	if err := g.inner.Validate(); err != nil {
		return fmt.Errorf("%w: relay addresses: %w", ErrBadConfig, err)
	}
	return nil
}

func (g *relayGenerator) Validate() error { return nil } // init did

func (g *relayGenerator) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	conn, addr, err := g.inner.AllocatePacketConn(conf)
	if err != nil {
		return nil, nil, err
	}
	return &relayConn{PacketConn: conn, s: g.s}, addr, nil
}

func (g *relayGenerator) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errTCPRelay
}

func (g *relayGenerator) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errTCPRelay
}

// relayConn is a relay's socket that drops what is sent to an address
// other than the allowed peers: a permission names an address, not a
// port, and the media server's address may have other services.
type relayConn struct {
	net.PacketConn
	s *Server
}

func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(addr.String())
	}
	if !c.s.allowed(ap) {
		c.s.metrics.dropped.Inc()
		return len(p), nil // dropped as a network would, quietly
	}
	return c.PacketConn.WriteTo(p, addr)
}
