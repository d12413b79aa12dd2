//go:build !linux

package rtctest

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

var errNoTimestamps = errors.New("rtctest: kernel receive timestamps are read on Linux only")

// enableTimestamps fails outside Linux: arrivals are then the time the
// socket read returns.
func enableTimestamps(*net.UDPConn) error { return errNoTimestamps }

func readStamped(c *net.UDPConn, b []byte) (int, netip.AddrPort, time.Time, error) {
	n, addr, err := c.ReadFromUDPAddrPort(b)
	return n, addr, time.Now(), err
}
