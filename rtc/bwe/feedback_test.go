package bwe

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// A report made by a receiver and read back gives each packet's fate and
// arrival; one whose deltas do not match its packets is refused whole.
func TestParseFeedback(t *testing.T) {
	rec := twcc.NewRecorder(9)
	const start = 5_000_000 // µs
	arrivals := map[uint16]int64{65534: start, 65535: start + 1000, 2: start + 90_000, 3: start + 90_250}
	for _, seq := range []uint16{65534, 65535, 2, 3} {
		rec.Record(1, seq, arrivals[seq])
	}
	pkts := rec.BuildFeedbackPacket()
	raw, err := rtcp.Marshal(pkts)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := rtcp.Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	fb := parsed[0].(*rtcp.TransportLayerCC)
	acks, err := ParseFeedback(fb, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint16{65534, 65535, 0, 1, 2, 3}
	if len(acks) != len(want) {
		t.Fatalf("%d acks, want %d: %+v", len(acks), len(want), acks)
	}
	first := acks[0].Arrival
	for i, a := range acks {
		at, received := arrivals[a.Seq]
		if a.Seq != want[i] || a.Received != received {
			t.Fatalf("ack %d: %+v, want seq %d received %v", i, a, want[i], received)
		}
		if received && (a.Arrival-first) != time.Duration(at-start)*time.Microsecond {
			t.Fatalf("ack %d: arrival %v after the first, want %v", i, a.Arrival-first, time.Duration(at-start)*time.Microsecond)
		}
	}

	fb.RecvDeltas = fb.RecvDeltas[:len(fb.RecvDeltas)-1]
	prev := []Ack{{Seq: 7}}
	got, err := ParseFeedback(fb, prev)
	if !errors.Is(err, ErrMalformedFeedback) || len(got) != 1 {
		t.Fatalf("a report short of a delta: %d acks, %v; want 1 (as it was), %v", len(got), err, ErrMalformedFeedback)
	}
	fb.PacketStatusCount += 3
	if _, err := ParseFeedback(fb, nil); !errors.Is(err, ErrMalformedFeedback) {
		t.Fatalf("a report counting more packets than it describes: %v", err)
	}
}

// FuzzFeedback reads arbitrary RTCP as a subscriber's feedback: no
// panic, a report refused changes nothing, and the estimate stays within
// its bounds.
func FuzzFeedback(f *testing.F) {
	rec := twcc.NewRecorder(9)
	for seq := range uint16(30) {
		if seq%4 != 1 {
			rec.Record(1, seq, int64(seq)*3000)
		}
	}
	raw, err := rtcp.Marshal(rec.BuildFeedbackPacket())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{0x8f, 205, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0x20, 3, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg := Config{Initial: 500_000, Min: 30_000, Max: 5_000_000}
		e := New(cfg)
		for seq := range uint32(40) {
			r, _ := e.Sending(seq)
			r.Sent(1000, e.hist.base.Add(time.Duration(seq)*time.Millisecond))
		}
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		now := e.hist.base.Add(time.Second)
		for _, p := range pkts {
			fb, ok := p.(*rtcp.TransportLayerCC)
			if !ok {
				continue
			}
			acks, err := ParseFeedback(fb, nil)
			if err != nil {
				if len(acks) != 0 {
					t.Fatalf("%d acks from a report refused", len(acks))
				}
				continue
			}
			for range 3 {
				now = now.Add(400 * time.Millisecond)
				if est := e.Feedback(acks, now); est < cfg.Min || est > cfg.Max {
					t.Fatalf("estimate %d outside [%d, %d]", est, cfg.Min, cfg.Max)
				}
			}
		}
	})
}
