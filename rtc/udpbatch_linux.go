package rtc

import (
	"math/bits"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched sends. A fan-out writer sends each packet to every subscriber of
// its group, one datagram per subscriber, each to another address. Made one
// by one, every datagram pays for a system call of its own; sendmmsg sends
// them all with one. But the datagrams come down pion's write chain (SRTP,
// then the ICE pair, then the UDP mux) one at a time, and nothing in that
// chain says which goroutine writes or that more are coming.
//
// So the writer holds the conn (holdSends) while it writes one packet to
// its group, and releases it after (releaseSends). While anyone holds the
// conn, every datagram written to it is copied into the pending batch
// instead of being sent, and every release sends what is pending with one
// sendmmsg. A datagram written by another goroutine during a hold (an RTCP
// report, a STUN answer) waits at most until that hold ends: some holder
// has yet to release when it is queued, and that release sends it.

const (
	// maxBatch is the most datagrams one sendmmsg carries; a batch that
	// fills up is sent at once.
	maxBatch = 64
	// batchSlotSize is the room for one datagram in a batch. Larger ones
	// (none the server sends in practice) are sent on their own.
	batchSlotSize = 1500
)

// mmsghdr is struct mmsghdr of <sys/socket.h>, for sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// sendBatch is datagrams waiting for one sendmmsg. Its headers point into
// its own arrays, set once when it is made.
type sendBatch struct {
	n     int // datagrams queued
	sent  int // datagrams taken by the kernel, or refused (see send)
	errs  int // datagrams refused
	err   error
	msgs  [maxBatch]mmsghdr
	iovs  [maxBatch]unix.Iovec
	names [maxBatch]unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	to    [maxBatch]netip.AddrPort        // for the standard path, when the socket is full
	bufs  [maxBatch][batchSlotSize]byte

	control func(fd uintptr)
}

var sendBatches = sync.Pool{New: func() any {
	b := new(sendBatch)
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.SetIovlen(1)
	}
	b.control = b.send
	return b
}}

// add copies d, bound for to, into the batch. The caller checked that the
// address suits the socket (sockaddrFits) and that d fits a slot.
func (b *sendBatch) add(d []byte, to netip.AddrPort, ipv6 bool) {
	i := b.n
	copy(b.bufs[i][:], d)
	b.iovs[i].SetLen(len(d))
	b.msgs[i].hdr.Namelen = uint32(putSockaddr(&b.names[i], to, ipv6))
	b.to[i] = to
	b.n++
}

// send hands the kernel what it will take without blocking. A datagram the
// kernel refuses for another reason than a full socket is skipped, as a
// lost datagram would be, and counted.
func (b *sendBatch) send(fd uintptr) {
	for b.sent < b.n {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&b.msgs[b.sent])), uintptr(b.n-b.sent), 0, 0, 0)
		switch errno {
		case 0:
			b.sent += int(r)
		case unix.EAGAIN, unix.EINTR:
			return // the rest waits for room on the standard path
		default:
			b.errs++
			b.err = errno
			b.sent++
		}
	}
}

// sockaddrFits reports whether a datagram to addr can be queued as a raw
// sockaddr of the socket's family: what WriteToAddrPort sends directly.
func (c *sharedUDPConn) sockaddrFits(addr netip.AddrPort) bool {
	ip := addr.Addr()
	if c.ipv6 {
		return ip.IsValid() && ip.Zone() == ""
	}
	return ip.Is4()
}

// holdSends starts a hold: datagrams are queued until releaseSends.
func (c *sharedUDPConn) holdSends() { c.holders.Add(1) }

// releaseSends ends a hold and has every queued datagram sent: by this
// goroutine, or by the one sending batches already, which sends these after
// the ones it has. Either way they go out after every datagram queued
// before them: a holder's next datagrams, to the same subscribers, cannot
// overtake them, even when another holder took them into its batch.
func (c *sharedUDPConn) releaseSends() {
	c.holders.Add(-1)
	c.sendQueued(true)
}

// enqueue queues d for the pending batch, and reports false if no hold is
// open any more, for the caller to send d itself.
func (c *sharedUDPConn) enqueue(d []byte, to netip.AddrPort) bool {
	c.bmu.Lock()
	// Checked again under bmu: a release that ran since the caller looked
	// has already taken the batch, and nobody would send d.
	if c.holders.Load() <= 0 {
		c.bmu.Unlock()
		return false
	}
	b := c.pending
	if b == nil {
		b = sendBatches.Get().(*sendBatch)
		c.pending = b
	}
	b.add(d, to, c.ipv6)
	filled := b.n == maxBatch
	if filled {
		c.full = append(c.full, b)
		c.pending = nil
	}
	c.bmu.Unlock()
	if filled {
		c.sendQueued(false)
	}
	return true
}

// sendQueued sends the filled batches, and the pending one too if all, in
// the order they were filled. Only one goroutine sends at a time, so that
// a batch taken later never goes out before one taken earlier; a caller
// that finds another sending leaves its batches to it instead of waiting,
// since waiting would park one writer behind another on every packet they
// both fan out.
func (c *sharedUDPConn) sendQueued(all bool) {
	c.bmu.Lock()
	if all {
		c.sendPending = true
	}
	if c.sender {
		c.bmu.Unlock()
		return
	}
	c.sender = true
	for {
		batches := append(c.sending[:0], c.full...)
		clear(c.full)
		c.full = c.full[:0]
		if c.sendPending && c.pending != nil {
			batches = append(batches, c.pending)
			c.pending = nil
		}
		c.sendPending = false
		if len(batches) == 0 {
			c.sending = batches
			c.sender = false
			c.bmu.Unlock()
			return
		}
		c.bmu.Unlock()
		for i, b := range batches {
			c.flush(b)
			batches[i] = nil
		}
		c.bmu.Lock()
		c.sending = batches[:0]
	}
}

// flush sends b and returns it to the pool.
func (c *sharedUDPConn) flush(b *sendBatch) {
	if cerr := c.raw.Control(b.control); cerr != nil {
		// The socket is closed: what is queued is lost with it.
		b.sent = b.n
	}
	for ; b.sent < b.n; b.sent++ {
		// The socket buffer is full: wait for room, as a single write does.
		if _, err := c.WriteToUDPAddrPort(b.bufs[b.sent][:b.iovs[b.sent].Len], b.to[b.sent]); err != nil {
			b.errs++
			b.err = err
		}
	}
	if b.errs > 0 {
		c.sendFailed(b.errs, b.err)
	}
	b.n, b.sent, b.errs, b.err = 0, 0, 0, nil
	sendBatches.Put(b)
}

// sendFailed counts datagrams of a batch that could not be sent. The writer
// was told they were sent, as UDP would have lost them on the way; they are
// logged at every power of two, so that a persistent failure shows without
// flooding the log.
func (c *sharedUDPConn) sendFailed(n int, err error) {
	total := c.sendErrors.Add(uint64(n))
	if prev := total - uint64(n); bits.Len64(prev) != bits.Len64(total) {
		c.log.Warn("batched UDP send failed", "err", err, "failed_total", total)
	}
}
