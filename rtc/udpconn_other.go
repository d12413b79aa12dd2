//go:build !linux

package rtc

import "net"

// newSharedUDPConn returns conn: outside Linux the server writes through
// the standard library's locked path (see udpconn_linux.go).
func newSharedUDPConn(conn net.PacketConn) net.PacketConn { return conn }
