package bwe

import (
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
)

// BenchmarkSending is the record of a packet sent: its slot, its
// extension's bytes, and its time and size once out.
func BenchmarkSending(b *testing.B) {
	e := New(Config{Initial: 1_000_000})
	at := epoch
	b.ReportAllocs()
	for i := range b.N {
		r, ok := e.Sending(uint32(i))
		if !ok {
			b.Fatal("no slot")
		}
		r.Sent(1200, at)
	}
}

// BenchmarkFeedback is a report of 16 packets (100 ms of 1.2 Mbps video)
// taken whole: its acks read from the packet, and the estimate's filters
// run on them. The reports cover the ring once, and are taken
// again as new once it is done (their marks cleared).
func BenchmarkFeedback(b *testing.B) {
	e := New(Config{Initial: 1_000_000})
	const perReport, reports = 16, historySize / 16
	var fbs [][]byte
	seq := uint32(0)
	for range reports {
		rec := twcc.NewRecorder(9)
		for range perReport {
			r, _ := e.Sending(seq)
			r.Sent(1200, epoch.Add(time.Duration(seq)*6*time.Millisecond))
			rec.Record(1, uint16(seq), 1_000_000+int64(seq)*6_000)
			seq++
		}
		for _, p := range rec.BuildFeedbackPacket() {
			raw, err := p.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			fbs = append(fbs, raw)
		}
	}
	now := epoch
	var acks []Ack
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(fbs) == 0 {
			clear(e.reported[:])
		}
		var err error
		if acks, err = ParseFeedback(fbs[i%len(fbs)], acks[:0]); err != nil {
			b.Fatal(err)
		}
		now = now.Add(100 * time.Millisecond)
		e.Feedback(acks, now)
	}
}
