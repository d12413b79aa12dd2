package bwe

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// A report made by a receiver gives each packet's fate and arrival, its
// sequence numbers wrapping; one cut short, or not a transport-cc
// feedback, is refused whole.
func TestParseFeedback(t *testing.T) {
	rec := twcc.NewRecorder(9)
	const start = 5_000_000 // µs
	// A large delta (70 ms after the first) and a negative one (the
	// last, 1 ms before the one before it).
	arrivals := map[uint16]int64{65534: start, 65535: start + 1000, 2: start + 90_000, 3: start + 90_250, 9: start + 89_250}
	for _, seq := range []uint16{65534, 65535, 2, 3, 9} {
		rec.Record(1, seq, arrivals[seq])
	}
	raw, err := rtcp.Marshal(rec.BuildFeedbackPacket())
	if err != nil {
		t.Fatal(err)
	}
	acks, err := ParseFeedback(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(acks) != 12 {
		t.Fatalf("%d acks, want 12 (65534 to 9): %+v", len(acks), acks)
	}
	first := acks[0].Arrival
	for i, a := range acks {
		at, received := arrivals[a.Seq]
		if a.Seq != uint16(65534+i) || a.Received != received {
			t.Fatalf("ack %d: %+v, want seq %d received %v", i, a, uint16(65534+i), received)
		}
		if received && (a.Arrival-first) != time.Duration(at-start)*time.Microsecond {
			t.Fatalf("ack %d: arrival %v after the first, want %v", i, a.Arrival-first, time.Duration(at-start)*time.Microsecond)
		}
	}
	for _, bad := range []struct {
		name string
		b    []byte
	}{
		{"cut short", raw[:len(raw)-4]},
		{"fixed fields alone", append(append([]byte{}, raw[:3]...), append([]byte{4}, raw[4:20]...)...)},
		{"a NACK", []byte{0x81, 205, 0, 3, 0, 0, 0, 9, 0, 0, 0, 1, 0, 5, 0, 0}},
		{"empty", nil},
	} {
		prev := []Ack{{Seq: 7}}
		got, err := ParseFeedback(bad.b, prev)
		if !errors.Is(err, ErrMalformedFeedback) || len(got) != 1 {
			t.Errorf("%s: %d acks, %v; want 1 (as it was), %v", bad.name, len(got), err, ErrMalformedFeedback)
		}
	}
}

// FuzzFeedback reads arbitrary bytes as a transport-cc feedback: no
// panic; a packet both pion's parser and ours read, they read alike; a
// report refused changes nothing; the estimate stays within its bounds.
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
	// A report whose last packet arrived a large delta after the one
	// before it.
	late := twcc.NewRecorder(9)
	late.Record(1, 0, 1000)
	late.Record(1, 1, 101_000)
	if raw, err = rtcp.Marshal(late.BuildFeedbackPacket()); err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{0x8f, 205, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0x20, 3, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		acks, err := ParseFeedback(b, nil)
		if err != nil && len(acks) != 0 {
			t.Fatalf("%d acks from a report refused", len(acks))
		}
		var fb rtcp.TransportLayerCC
		if err == nil && fb.Unmarshal(b) == nil {
			comparePion(t, &fb, acks)
		}
		if err != nil {
			return
		}
		cfg := Config{Initial: 500_000, Min: 30_000, Max: 5_000_000}
		e := New(cfg)
		for seq := range uint32(40) {
			r, _ := e.Sending(seq)
			r.Sent(1000, epoch.Add(time.Duration(seq)*time.Millisecond))
		}
		now := epoch.Add(time.Second)
		for range 3 {
			now = now.Add(400 * time.Millisecond)
			if est := e.Feedback(acks, now); est < cfg.Min || est > cfg.Max {
				t.Fatalf("estimate %d outside [%d, %d]", est, cfg.Min, cfg.Max)
			}
		}
	})
}

// comparePion checks our acks against pion's parse of the same report.
func comparePion(t *testing.T, fb *rtcp.TransportLayerCC, acks []Ack) {
	t.Helper()
	if len(acks) != int(fb.PacketStatusCount) {
		t.Fatalf("%d acks, pion reads %d packets", len(acks), fb.PacketStatusCount)
	}
	at := time.Duration(fb.ReferenceTime) * referenceUnit
	deltas := fb.RecvDeltas
	for i, a := range acks {
		if a.Seq != fb.BaseSequenceNumber+uint16(i) {
			t.Fatalf("ack %d: seq %d, want %d", i, a.Seq, fb.BaseSequenceNumber+uint16(i))
		}
		if !a.Received {
			continue
		}
		if len(deltas) == 0 {
			t.Fatalf("ack %d received, pion has no delta left", i)
		}
		at += time.Duration(deltas[0].Delta) * time.Microsecond
		deltas = deltas[1:]
		if a.Arrival != at {
			t.Fatalf("ack %d: arrival %v, pion's %v", i, a.Arrival, at)
		}
	}
	// pion reads a delta for each packet received: one left over is a
	// packet it has received that we have not.
	if len(deltas) != 0 {
		t.Fatalf("pion reads %d packets received past those our %d acks receive", len(deltas), len(acks))
	}
}
