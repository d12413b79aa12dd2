package rtctest

import (
	"testing"
	"time"
)

// The Shaper's bucket: full at SetRate, it lets RTP through while it
// holds the datagram's bits and drops what exceeds it, counted and
// recorded; RTCP passes whatever the bucket holds; time refills it. At a
// rate whose tenth of a second is smaller than a datagram, the bucket
// still holds one. The zero rate lets everything through.
func TestShaperBucket(t *testing.T) {
	var s Shaper
	media := append(rtpHeader(0x80, 96, 7, 42), make([]byte, 1160)...) // 1200 bytes: 9600 bits
	report := append(rtpHeader(0x80, 200, 0, 42), make([]byte, 1160)...)
	if !s.pass(media, time.Now()) {
		t.Fatal("the zero Shaper dropped a datagram")
	}
	s.RecordDrops()
	s.SetRate(60_000) // a tenth of a second is 6000 bits: the bucket holds 12000
	now := time.Now()
	if !s.pass(media, now) {
		t.Fatal("a full bucket dropped a datagram of 9600 bits")
	}
	if s.pass(media, now) {
		t.Fatal("a bucket with 2400 bits left let 9600 through")
	}
	if !s.pass(report, now) {
		t.Fatal("RTCP dropped")
	}
	if !s.DroppedRTP(42, 7) || s.DroppedRTP(42, 8) || s.Dropped() != 1 {
		t.Fatalf("%d dropped; recorded seq 7 %v, 8 %v: want 1, seq 7 alone", s.Dropped(), s.DroppedRTP(42, 7), s.DroppedRTP(42, 8))
	}
	// 160 ms at 60 kbps: 9600 bits, more than the 7200 missing.
	if !s.pass(media, now.Add(160*time.Millisecond)) {
		t.Fatal("the bucket refilled by 160 ms dropped a datagram of 9600 bits")
	}
	s.SetRate(0)
	for range 10 {
		if !s.pass(media, now) {
			t.Fatal("the limit lifted dropped a datagram")
		}
	}
}
