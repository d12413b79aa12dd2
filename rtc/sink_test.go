package rtc

import (
	"slices"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// seqSink keeps the sequence number of every packet it gets; the bytes are
// the forwarder's and are not kept.
type seqSink struct {
	mu   sync.Mutex
	seqs []uint16
}

func (s *seqSink) WriteRTP(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs = append(s.seqs, uint16(b[2])<<8|uint16(b[3]))
}

func (s *seqSink) got() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint16(nil), s.seqs...)
}

func TestSinkGetsForwardedPackets(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "a", ssrc: 7, record: true}
	if err := fx.f.AddSubscriber(fx.downTrack(sub)); err != nil {
		t.Fatal(err)
	}
	send := func(from, n int) {
		for i := from; i < from+n; i++ {
			fx.track.in <- rawRTP(t, 96, uint16(i), uint32(3000*i), i == from, rtctest.CounterPayload(uint32(i), 40))
		}
	}
	sink := &seqSink{}
	send(0, 3) // before the sink
	poll.Until(t, "3 packets", func() bool { return sub.count() == 3 })
	fx.f.SetSink(sink)
	send(3, 4)
	poll.Until(t, "7 packets", func() bool { return sub.count() == 7 })
	// Muted packets are not forwarded, so not recorded either.
	fx.f.SetMuted(true)
	send(7, 2)
	poll.Until(t, "muted packets counted", func() bool { return fx.f.Stats().Dropped(DropMuted) == 2 })
	fx.f.SetMuted(false)
	send(9, 1)
	poll.Until(t, "the packet after unmuting", func() bool { return sub.count() == 8 })
	fx.f.SetSink(nil)
	send(10, 2)
	poll.Until(t, "the packets after the sink", func() bool { return sub.count() == 10 })
	got := sink.got()
	if want := []uint16{3, 4, 5, 6, 9}; !slices.Equal(got, want) {
		t.Fatalf("the sink got %v, want %v", got, want)
	}
}

// nopSink is the cheapest sink, so that the forwarder's own cost shows.
type nopSink struct{}

func (nopSink) WriteRTP([]byte) {}

func TestSinkKeepsForwardingAllocationFree(t *testing.T) {
	fw, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}, CacheSlots: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	fw.SetSink(nopSink{})
	pkt := rawRTP(t, 96, 0, 0, true, make([]byte, 1000))
	forwardOne := func() {
		p := getPacket()
		fw.forward(p, copy(p.buf[:], pkt))
	}
	for range 100 {
		forwardOne()
	}
	if a := testing.AllocsPerRun(500, forwardOne); a > 0.05 {
		t.Errorf("%.2f allocations per packet forwarded to a sink, want 0", a)
	}
}
