package rtctest

import (
	"net"
	"net/netip"
)

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
