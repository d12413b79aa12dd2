package rtc

import "time"

// A client NACKs a lost packet again and again until it arrives (pion's
// generator every 100 ms, browsers about once per round trip). On a link
// that drops what exceeds its rate, every resend of a packet the link
// keeps dropping adds to what overruns it, and the losses it causes read as
// congestion. So one packet is resent at most maxResends times, and not
// twice within minResendGap (a repeated NACK already on its way).
const (
	maxResends   = 3
	minResendGap = 20 * time.Millisecond
)

// resendLimit remembers the packets of one down-track resent lately. It
// is owned by the down-track's RTCP loop, the only goroutine that answers
// its NACKs, so it needs no lock; a packet 256 numbers later takes the
// slot of an earlier one, long since resent or given up.
type resendLimit struct {
	slots [256]resendSlot
}

type resendSlot struct {
	seq   uint16
	tries uint8
	last  time.Time
}

// allow reports whether the packet seq may be resent at now, and counts
// the resend if so.
func (l *resendLimit) allow(seq uint16, now time.Time) bool {
	s := &l.slots[uint8(seq)]
	if s.tries == 0 || s.seq != seq {
		*s = resendSlot{seq: seq, tries: 1, last: now}
		return true
	}
	if s.tries >= maxResends || now.Sub(s.last) < minResendGap {
		return false
	}
	s.tries++
	s.last = now
	return true
}
