//go:build !linux

package rtc

import (
	"log/slog"
	"net"
)

// newSharedUDPConn returns conn: outside Linux the server writes through
// the standard library's locked path (see udpconn_linux.go).
func newSharedUDPConn(conn net.PacketConn, _ *slog.Logger) net.PacketConn { return conn }
