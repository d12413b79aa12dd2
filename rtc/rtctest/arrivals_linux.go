package rtctest

import (
	"fmt"
	"net"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableTimestamps asks the kernel for each datagram's receive time
// (SO_TIMESTAMPNS), taken as the packet enters the receiving stack, before
// any wait for the reader. The kernel switches that stamping on for the
// whole stack shortly after the first socket asks; until then it stamps
// at the read, which only overstates the path.
func enableTimestamps(c *net.UDPConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("rtctest: raw socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return fmt.Errorf("rtctest: raw socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("rtctest: SO_TIMESTAMPNS: %w", serr)
	}
	return nil
}

// sizeofTimespec is the kernel's struct timespec on this architecture,
// what SCM_TIMESTAMPNS carries.
const sizeofTimespec = int(unsafe.Sizeof(unix.Timespec{}))

// readStamped reads one datagram and its kernel receive time; the time of
// the read when the kernel gave none.
func readStamped(c *net.UDPConn, b []byte) (int, netip.AddrPort, time.Time, error) {
	var oob [oobSize]byte
	n, oobn, _, addr, err := c.ReadMsgUDPAddrPort(b, oob[:])
	if err != nil {
		return n, addr, time.Time{}, err
	}
	at, ok := kernelTimestamp(oob[:oobn])
	if !ok {
		at = time.Now()
	}
	return n, addr, at, nil
}

// kernelTimestamp finds the SCM_TIMESTAMPNS message among control messages
// without allocating (unix.ParseSocketControlMessage allocates per call).
// It stops at the first malformed header.
func kernelTimestamp(oob []byte) (time.Time, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), oob)
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return time.Time{}, false
		}
		data := oob[unix.CmsgLen(0):l]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= sizeofTimespec {
			var ts unix.Timespec
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&ts)), sizeofTimespec), data)
			return time.Unix(ts.Unix()), true
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return time.Time{}, false
}
