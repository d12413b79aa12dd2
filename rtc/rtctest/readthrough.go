package rtctest

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// clientAPIWith is ClientAPI on the standard network with each UDP
// socket of its peer connections wrapped by wrap, which is given v, and
// the header extensions exts negotiated too (ClientAPIWithExtensions); it
// returns v too.
func clientAPIWith[T any, C transport.UDPConn](v T, wrap func(*net.UDPConn, T) C, exts ...string) (*webrtc.API, T, error) {
	base, err := stdnet.NewNet()
	if err != nil {
		return nil, v, fmt.Errorf("rtctest: net: %w", err)
	}
	n := &wrappedNet{Net: base, wrap: func(c *net.UDPConn) transport.UDPConn { return wrap(c, v) }}
	api, err := newClientAPIWith(n, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, pathOptions{exts: exts})
	if err != nil {
		return nil, v, err
	}
	return api, v, nil
}

// wrappedNet is the standard network whose UDP sockets are wrapped. ICE
// listens for host candidates with ListenUDP; ListenPacket serves relayed
// ones.
type wrappedNet struct {
	*stdnet.Net
	wrap func(*net.UDPConn) transport.UDPConn
}

func (n *wrappedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return n.wrap(c), nil
}

func (n *wrappedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		return n.wrap(u), nil
	}
	return c, nil
}

// readThrough is a UDP socket whose every read method goes through read,
// for the test networks' sockets that look at or drop what they read. It
// implements pion/ice's AddrPortReaderWriter, so that ICE reads through
// it without allocating an address per packet.
type readThrough struct {
	*net.UDPConn
	read func(b []byte) (int, netip.AddrPort, error)
}

func (c readThrough) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) { return c.read(b) }

func (c readThrough) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.UDPConn.WriteToUDPAddrPort(b, addr)
}

func (c readThrough) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) { return c.read(b) }

func (c readThrough) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	n, addr, err := c.read(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

func (c readThrough) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.ReadFromUDP(b)
	if addr == nil {
		return n, nil, err // not a typed nil in the interface
	}
	return n, addr, err
}

func (c readThrough) Read(b []byte) (int, error) {
	n, _, err := c.read(b)
	return n, err
}
