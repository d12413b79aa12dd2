package rtc

import (
	"bytes"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// paddingRTP is a padding-only packet, as a browser pads its stream when
// no RTX was negotiated.
func paddingRTP(t *testing.T, seq uint16, ts uint32) []byte {
	t.Helper()
	b, err := (&rtp.Packet{
		Header:      rtp.Header{Version: 2, Padding: true, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1234},
		PaddingSize: 224,
	}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublisherPaddingDropped: a publisher's padding-only packets on a
// video track (Firefox pads its top layer so, hundreds a second) reach no
// subscriber, which sees the media numbered on with no gap; a packet that
// comes late, after padding that followed it, is placed where it was; and
// a NACK for a packet after the padding is answered with that packet.
func TestPublisherPaddingDropped(t *testing.T) {
	fx := newFixture(t, vp8Codec)
	sub := &memContext{id: "p", ssrc: 77, record: true, rtcp: make(chan []byte)}
	dt := fx.downTrack(sub)
	if err := fx.f.AddSubscriber(dt); err != nil {
		t.Fatal(err)
	}
	media := func(seq uint16, i int) []byte {
		raw := rawRTP(t, 96, seq, uint32(3000*i), i == 0, rtctest.CounterPayload(uint32(i), 40))
		raw[1] |= 0x80 // a frame a packet
		return raw
	}
	// Publisher's numbers: 100 and 101 media, 102 to 104 padding, 105
	// media, 107 padding, then 106 late (a retransmission), then 108.
	in := [][]byte{
		media(100, 0), media(101, 1),
		paddingRTP(t, 102, 3000), paddingRTP(t, 103, 3000), paddingRTP(t, 104, 3000),
		media(105, 2), paddingRTP(t, 107, 6000), media(106, 3), media(108, 4),
	}
	for _, raw := range in {
		fx.track.in <- raw
	}
	poll.Until(t, "the media forwarded", func() bool { return sub.count() == 5 })
	sent := sub.sent()
	for i, p := range sent {
		if len(p.payload) == 0 || p.hdr.Padding {
			t.Fatalf("packet %d forwarded is padding: %+v", i, p.hdr)
		}
	}
	// The subscriber's numbers, in the order sent: on from the first with
	// no gap, the late 106 in its place before 108.
	base := sent[0].hdr.SequenceNumber
	for i, p := range sent {
		if p.hdr.SequenceNumber != base+uint16(i) {
			t.Fatalf("sequence numbers %v, want %d on with no gap", seqs(sent), base)
		}
	}
	if s := fx.f.Stats(); s.Drops[DropPadding] != 4 {
		t.Fatalf("%d padding drops counted, want 4", s.Drops[DropPadding])
	}

	// A NACK for the packet numbered 2 (the publisher's 105) gets it.
	var want sentPacket
	for _, p := range sent {
		if p.hdr.SequenceNumber == base+2 {
			want = p
		}
	}
	nack, err := rtcp.Marshal([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: 77, Nacks: []rtcp.NackPair{{PacketID: base + 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	sub.rtcp <- nack
	close(sub.rtcp)
	poll.Until(t, "the retransmission", func() bool { return sub.count() == 6 })
	got := sub.sent()[5]
	if got.hdr.SequenceNumber != want.hdr.SequenceNumber || got.hdr.Timestamp != want.hdr.Timestamp || !bytes.Equal(got.payload, want.payload) {
		t.Fatalf("retransmission %+v, want %+v", got.hdr, want.hdr)
	}
}

func seqs(sent []sentPacket) []uint16 {
	out := make([]uint16, len(sent))
	for i, p := range sent {
		out[i] = p.hdr.SequenceNumber
	}
	return out
}

// TestPaddingGapLate: a late packet is numbered down by the padding
// dropped before it; once more padding was dropped than is remembered, one
// older than the drops remembered is dropped, and the numbers wrap.
func TestPaddingGapLate(t *testing.T) {
	var g paddingGap
	take := func(seq uint16, padding bool) (uint16, bool) { return g.take(seq, padding) }
	if out, drop := take(65530, false); drop || out != 65530 {
		t.Fatalf("first packet: %d, %v", out, drop)
	}
	if _, drop := take(65531, true); !drop {
		t.Fatal("padding not dropped")
	}
	if out, drop := take(2, false); drop || out != 1 { // 65532 to 1 lost, one padding before
		t.Fatalf("after the wrap: %d, %v", out, drop)
	}
	if out, drop := take(65533, false); drop || out != 65532 { // late, after the padding
		t.Fatalf("late packet: %d, %v", out, drop)
	}
	if _, drop := take(65531, true); !drop {
		t.Fatal("late padding not dropped")
	}
	// Many paddings: the oldest are forgotten.
	for i := range padDropsKept + 10 {
		if _, drop := take(uint16(3+i), true); !drop {
			t.Fatal("padding not dropped")
		}
	}
	if _, drop := take(0, false); !drop {
		t.Fatal("a late packet before forgotten drops was placed")
	}
	next := uint16(3 + padDropsKept + 10)
	if out, drop := take(next, false); drop || out != next-uint16(padDropsKept+11) {
		t.Fatalf("after the paddings: %d, %v, want %d", out, drop, next-uint16(padDropsKept+11))
	}
	if _, drop := take(next-5, true); !drop { // a late copy of a padding
		t.Fatal("late padding not dropped")
	}
}
