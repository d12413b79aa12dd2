package bwe

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pion/interceptor/pkg/twcc"
)

// link is a simulated path from the sender to the receiver: a
// bottleneck of capacity bits per second with a drop-tail queue of at
// most maxQueue, or (policer) a token bucket that drops what exceeds the
// rate without queueing; random loss on top; a fixed propagation delay.
type link struct {
	capacity  float64
	maxQueue  time.Duration
	policer   bool
	loss      float64
	propagate time.Duration

	freeAt time.Duration // when the bottleneck is next free
	tokens float64       // the policer's bucket, bits
	lastAt time.Duration
	rnd    *rand.Rand
}

// carry returns when a packet of size bytes sent at t arrives, or false
// when it is dropped.
func (l *link) carry(t time.Duration, size int) (time.Duration, bool) {
	bits := float64(size * 8)
	if l.rnd != nil && l.rnd.Float64() < l.loss {
		return 0, false
	}
	if l.policer {
		l.tokens = min(l.tokens+l.capacity*(t-l.lastAt).Seconds(), l.capacity*0.05)
		l.lastAt = t
		if l.tokens < bits {
			return 0, false
		}
		l.tokens -= bits
		return t + l.propagate, true
	}
	start := max(t, l.freeAt)
	if start-t > l.maxQueue {
		return 0, false
	}
	l.freeAt = start + time.Duration(bits/l.capacity*float64(time.Second))
	return l.freeAt + l.propagate, true
}

// sim sends media through a link at the estimate's rate (capped at
// media), as an adaptive encoder would, and feeds the receiver's
// feedback back every 100 ms.
type sim struct {
	t     *testing.T
	e     *Estimator
	link  *link
	media float64 // the most the sender has to send, bits per second
	// probe is the rate of padding sent on top of the media, bits per
	// second, while the Estimator is told a probe runs (0: none).
	probe float64
	base  time.Time
	now   time.Duration
	seq   uint32
	owed  float64
	rec   *twcc.Recorder
	// inflight are packets sent whose arrival is not yet reported.
	inflight []simPacket
	acks     []Ack
}

type simPacket struct {
	seq     uint16
	arrival time.Duration
	lost    bool
}

const (
	simPacketSize = 1200
	simTick       = 5 * time.Millisecond
	simFeedback   = 100 * time.Millisecond
)

func newSim(t *testing.T, l *link, media float64, initial int) *sim {
	t.Helper()
	e := New(Config{Initial: initial, Min: 30_000, Max: 50_000_000})
	return &sim{t: t, e: e, link: l, media: media, base: epoch, rec: twcc.NewRecorder(9)}
}

// run simulates d more of the link and returns the estimate at its end.
func (s *sim) run(d time.Duration) int {
	s.t.Helper()
	end := s.now + d
	for s.now < end {
		rate := min(float64(s.e.Estimate()), s.media) + s.probe
		s.owed += rate * simTick.Seconds()
		for s.owed >= simPacketSize*8 {
			s.owed -= simPacketSize * 8
			s.send()
		}
		s.now += simTick
		if s.now%simFeedback == 0 {
			s.feedback()
		}
	}
	return s.e.Estimate()
}

func (s *sim) send() {
	rec, ok := s.e.Sending(s.seq)
	if !ok {
		s.t.Fatalf("packet %d: no slot", s.seq)
	}
	rec.Sent(simPacketSize, s.base.Add(s.now))
	arrival, carried := s.link.carry(s.now, simPacketSize)
	s.inflight = append(s.inflight, simPacket{seq: uint16(s.seq), arrival: arrival, lost: !carried})
	s.seq++
}

// feedback reports the packets arrived by now (and the lost ones before
// them), as a receiver does.
func (s *sim) feedback() {
	n := 0
	for _, p := range s.inflight {
		if !p.lost && p.arrival > s.now {
			break
		}
		if !p.lost {
			s.rec.Record(1, p.seq, p.arrival.Microseconds()+1_000_000_000)
		}
		n++
	}
	s.inflight = s.inflight[n:]
	for _, p := range s.rec.BuildFeedbackPacket() {
		raw, err := p.Marshal()
		if err != nil {
			s.t.Fatal(err)
		}
		if s.acks, err = ParseFeedback(raw, s.acks[:0]); err != nil {
			s.t.Fatal(err)
		}
		s.e.Feedback(s.acks, s.base.Add(s.now))
	}
}

// probing runs d of the link with a probe at rate bits per second of
// padding on top of the media, as the connection sends one, and returns
// the estimate at its end.
func (s *sim) probing(rate float64, d time.Duration) int {
	s.t.Helper()
	s.e.Probing(true)
	s.probe = rate
	defer func() { s.probe = 0 }()
	defer s.e.Probing(false)
	return s.run(d)
}
