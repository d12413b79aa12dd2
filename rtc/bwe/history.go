package bwe

import (
	"sync/atomic"
	"time"
)

// historySize is how many packets sent the ring remembers, a power of
// two: two seconds of 10 Mbps. Feedback on a packet sent longer ago than
// that comes too late to tell anything of the link as it is.
const historySize = 2048

// A slot's meta word: the packet's full sequence number in the high 32
// bits; below, slotDone with its size once it went out (and slotProbing
// if it went out while a probe ran), or slotClaimed while it is being
// sent. Zero: never used.
const (
	slotDone    = 1 << 31
	slotClaimed = 1 << 30
	slotProbing = 1 << 29
	slotSizeMax = 1<<29 - 1
)

// slot is one packet of the ring. The send path claims it, writes ext,
// sends, then stores at and marks it done; the feedback's side reads at
// and the size only between two equal loads of meta (a sequence lock), so
// that a slot being reused is never taken for the packet it held.
type slot struct {
	meta atomic.Uint64
	at   atomic.Int64 // when it was sent, µs since the estimator's base
	// ext holds the packet's transport-cc extension while it is sent:
	// the header refers to it until written, and the next claim of the
	// slot waits for the packet to be done, so it is never rewritten
	// under a send.
	ext [2]byte
}

// history is the ring of packets sent.
type history struct {
	base  time.Time
	slots [historySize]slot
}

// Record is a packet being sent, from Estimator.Sending to Sent.
type Record struct {
	s       *slot
	seq     uint32
	base    time.Time
	probing bool
}

// Ext returns the 2 bytes of the packet's transport-cc header extension
// (its sequence number, big-endian), valid until the packet is sent.
func (r Record) Ext() []byte { return r.s.ext[:] }

// Sent notes that the packet went out at at, size bytes in all (header
// and padding included).
func (r Record) Sent(size int, at time.Time) {
	r.s.at.Store(at.Sub(r.base).Microseconds())
	m := uint64(r.seq)<<32 | slotDone | uint64(min(max(size, 0), slotSizeMax))
	if r.probing {
		m |= slotProbing
	}
	r.s.meta.Store(m)
}

// claim takes seq's slot for its packet; false when the packet that held
// it before has not gone out yet, which only a send stalled for a whole
// ring of later packets would cause (that packet goes unrecorded).
func (h *history) claim(seq uint32, probing bool) (Record, bool) {
	s := &h.slots[seq%historySize]
	m := s.meta.Load()
	if m != 0 && (m&slotDone == 0 || int32(seq-uint32(m>>32)) < historySize) {
		return Record{}, false
	}
	if !s.meta.CompareAndSwap(m, uint64(seq)<<32|slotClaimed) {
		return Record{}, false
	}
	s.ext = [2]byte{byte(seq >> 8), byte(seq)}
	return Record{s: s, seq: seq, base: h.base, probing: probing}, true
}

// lookup returns when the packet seq went out (µs since base), its size
// and whether a probe ran as it went out, or false when the ring does not
// hold it (never sent, not yet out, or overwritten).
func (h *history) lookup(seq uint32) (at int64, size int, probing, ok bool) {
	s := &h.slots[seq%historySize]
	m := s.meta.Load()
	if m&slotDone == 0 || uint32(m>>32) != seq {
		return 0, 0, false, false
	}
	at = s.at.Load()
	if s.meta.Load() != m {
		return 0, 0, false, false
	}
	return at, int(m & slotSizeMax), m&slotProbing != 0, true
}
