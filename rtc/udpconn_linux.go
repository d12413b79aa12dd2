package rtc

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sharedUDPConn is the server's UDP port as the ICE mux uses it, made for
// many writers sending many small datagrams.
//
// The standard library serializes writes on a socket (one write lock per
// file descriptor), so fan-out writers on different cores would take turns
// at sendto and park each other. A datagram socket needs no such lock: the
// kernel sends each datagram whole. And it tells the scheduler of every
// sendto as a system call that may block; at thousands of sends a second
// that keeps the scheduler's monitor waking every 20 µs to hand the
// processor to another thread, which costs more context switches than the
// sends themselves. A sendto on a non-blocking UDP socket does not block.
//
// So WriteToAddrPort makes the sendto itself, as a raw system call on the
// non-blocking socket, and takes the standard path only when the socket
// buffer is full (to wait for room) or the address needs converting.
// ReadFromAddrPort likewise makes its recvfrom a raw system call, and
// leaves only the wait for a datagram to the runtime's network poller: a
// server that sleeps between video frames would otherwise wake the
// monitor with its first read of every frame.
//
// A fan-out writer may also hold the conn while it writes one packet to
// its group, to have the copies sent with one sendmmsg (udpbatch_linux.go).
type sharedUDPConn struct {
	*net.UDPConn
	raw  syscall.RawConn
	ipv6 bool // an AF_INET6 socket
	log  *slog.Logger

	holders atomic.Int32 // open holds; see holdSends
	bmu     sync.Mutex   // guards the fields up to sending
	pending *sendBatch
	full    []*sendBatch // filled batches not yet taken, oldest first
	// sender is set while a goroutine sends batches (sendQueued); it goes
	// on until nothing is left that it was asked to send. One sender at a
	// time sends the batches in the order they filled.
	sender      bool
	sendPending bool          // a release asked the sender to send pending too
	sending     []*sendBatch  // reused by the sender
	sendErrors  atomic.Uint64 // datagrams of batches that could not be sent
}

// newSharedUDPConn wraps conn; it returns conn itself when the socket
// cannot be reached.
func newSharedUDPConn(conn net.PacketConn, log *slog.Logger) net.PacketConn {
	udp, ok := conn.(*net.UDPConn)
	if !ok {
		return conn
	}
	raw, err := udp.SyscallConn()
	if err != nil {
		return conn
	}
	var family int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil || serr != nil {
		return conn
	}
	return &sharedUDPConn{UDPConn: udp, raw: raw, ipv6: family == unix.AF_INET6, log: log}
}

// sendCall is one direct sendto, pooled so that a write allocates nothing:
// its control function is bound once, when the sendCall is made.
type sendCall struct {
	buf     []byte
	to      unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	tolen   uintptr
	n       int
	err     error
	control func(fd uintptr)
}

var sendCalls = sync.Pool{New: func() any {
	c := new(sendCall)
	c.control = c.send
	return c
}}

func (c *sendCall) send(fd uintptr) {
	var p unsafe.Pointer
	if len(c.buf) > 0 {
		p = unsafe.Pointer(&c.buf[0])
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, fd, uintptr(p), uintptr(len(c.buf)), 0, uintptr(unsafe.Pointer(&c.to)), c.tolen)
	if errno != 0 {
		c.err = errno
		return
	}
	c.n = int(n)
}

// putSockaddr writes addr into dst as the raw sockaddr of a socket of the
// given family (an IPv4 one in dst's first bytes) and returns its length.
// The caller checked that addr suits the socket (sockaddrFits).
func putSockaddr(dst *unix.RawSockaddrInet6, addr netip.AddrPort, ipv6 bool) uintptr {
	if ipv6 {
		*dst = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: htons(addr.Port()), Addr: addr.Addr().As16()}
		return unix.SizeofSockaddrInet6
	}
	*(*unix.RawSockaddrInet4)(unsafe.Pointer(dst)) = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: htons(addr.Port()), Addr: addr.Addr().As4()}
	return unix.SizeofSockaddrInet4
}

// htons puts a port in network byte order, as a sockaddr holds it.
func htons(port uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], port)
	return *(*uint16)(unsafe.Pointer(&b[0]))
}

// ntohs reads a port a sockaddr holds.
func ntohs(port uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&port))[:])
}

// recvCall is one direct recvfrom; see sendCall.
type recvCall struct {
	buf     []byte
	from    unix.RawSockaddrAny
	n       int
	err     error
	control func(fd uintptr) bool
}

var recvCalls = sync.Pool{New: func() any {
	c := new(recvCall)
	c.control = c.recv
	return c
}}

// recv reports false to have the poller wait for the socket to be readable.
func (c *recvCall) recv(fd uintptr) bool {
	var p unsafe.Pointer
	if len(c.buf) > 0 {
		p = unsafe.Pointer(&c.buf[0])
	}
	fromLen := uint32(unix.SizeofSockaddrAny)
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(p), uintptr(len(c.buf)), 0,
		uintptr(unsafe.Pointer(&c.from)), uintptr(unsafe.Pointer(&fromLen)))
	switch errno {
	case 0:
		c.n, c.err = int(n), nil
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	default:
		c.n, c.err = 0, errno
		return true
	}
}

// addrPort returns the sender's address of the last datagram.
func (c *recvCall) addrPort() netip.AddrPort {
	switch c.from.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.from))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.from))
		ip := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			// Link-local: named by interface, as the standard library does.
			if ifi, err := net.InterfaceByIndex(int(sa.Scope_id)); err == nil {
				ip = ip.WithZone(ifi.Name)
			}
		}
		return netip.AddrPortFrom(ip, ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ReadFromAddrPort is the allocation-free read the ICE mux looks for; see
// sharedUDPConn. Deadlines set on the conn apply.
func (c *sharedUDPConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	call := recvCalls.Get().(*recvCall)
	call.buf, call.n, call.err = b, 0, nil
	rerr := c.raw.Read(call.control)
	n, err, from := call.n, call.err, call.addrPort()
	call.buf = nil
	recvCalls.Put(call)
	switch {
	case rerr != nil:
		return 0, netip.AddrPort{}, rerr // closed, or past the deadline
	case err != nil:
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: os.NewSyscallError("recvfrom", err)}
	}
	return n, from, nil
}

// WriteToAddrPort sends b to addr without the standard library's write
// lock; see sharedUDPConn.
func (c *sharedUDPConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if !c.sockaddrFits(addr) {
		return c.WriteToUDPAddrPort(b, addr)
	}
	if c.holders.Load() > 0 && len(b) <= batchSlotSize && c.enqueue(b, addr) {
		return len(b), nil
	}
	call := sendCalls.Get().(*sendCall)
	call.tolen = putSockaddr(&call.to, addr, c.ipv6)
	call.buf, call.n, call.err = b, 0, nil
	cerr := c.raw.Control(call.control)
	n, err := call.n, call.err
	call.buf = nil
	sendCalls.Put(call)
	switch {
	case cerr != nil:
		return 0, cerr // the socket is closed
	case err == nil:
		return n, nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		return c.WriteToUDPAddrPort(b, addr)
	default:
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(addr), Err: os.NewSyscallError("sendto", err)}
	}
}

// WriteTo sends through WriteToAddrPort when it can.
func (c *sharedUDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok {
		return c.WriteToAddrPort(b, ua.AddrPort())
	}
	return c.UDPConn.WriteTo(b, addr)
}
