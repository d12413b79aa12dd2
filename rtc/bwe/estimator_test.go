package bwe

import (
	"math/rand/v2"
	"testing"
	"time"
)

func queueLink(capacity float64) *link {
	return &link{capacity: capacity, maxQueue: 400 * time.Millisecond, propagate: 20 * time.Millisecond}
}

// On a steady link the estimate settles near its capacity: the delay
// that builds when the sender exceeds it brings the rate down, and the
// rate grows back while the queue is empty.
func TestSteadyLink(t *testing.T) {
	s := newSim(t, queueLink(2_000_000), 10_000_000, 1_000_000)
	s.run(20 * time.Second)
	lo, hi := 1e9, 0.0
	for range 40 {
		est := float64(s.run(250 * time.Millisecond))
		lo, hi = min(lo, est), max(hi, est)
	}
	if lo < 0.6*2_000_000 || hi > 1.3*2_000_000 {
		t.Fatalf("estimate between %.0f and %.0f over 10 s on a 2 Mbps link, want within 60%% to 130%% of it", lo, hi)
	}
	if acked := s.e.Acked(); acked < 1_000_000 || acked > 2_100_000 {
		t.Fatalf("acknowledged bitrate %d on a 2 Mbps link", acked)
	}
}

// A sender with less to send than the link takes stays near what it
// sends: the acknowledged bitrate caps the increase.
func TestAckedCeiling(t *testing.T) {
	s := newSim(t, queueLink(20_000_000), 400_000, 300_000)
	est := s.run(30 * time.Second)
	if est > 650_000 {
		t.Fatalf("estimate %d for a sender of 400 kbps on a 20 Mbps link, want at most 650000 (half again what arrives)", est)
	}
	if est < 400_000 {
		t.Fatalf("estimate %d below the 400 kbps the link carries", est)
	}
}

// A link cut to a lower rate takes the estimate down to it within
// seconds, whether the bottleneck queues (delay) or drops (loss); once
// whole again, the estimate climbs back.
func TestCutAndRecovery(t *testing.T) {
	for _, policer := range []bool{false, true} {
		name := "queue"
		if policer {
			name = "policer"
		}
		t.Run(name, func(t *testing.T) {
			l := queueLink(4_000_000)
			l.policer = policer
			s := newSim(t, l, 10_000_000, 1_000_000)
			if est := s.run(20 * time.Second); est < 2_500_000 {
				t.Fatalf("estimate %d on a 4 Mbps link after 20 s", est)
			}
			l.capacity = 500_000
			down := time.Duration(-1)
			for i := 1; i <= 40; i++ {
				if s.run(100*time.Millisecond) <= 700_000 {
					down = time.Duration(i) * 100 * time.Millisecond
					break
				}
			}
			if down < 0 {
				t.Fatalf("estimate %d 4 s after a cut to 500 kbps", s.e.Estimate())
			}
			t.Logf("down to the cut's rate after %v", down)
			if est := s.run(5 * time.Second); est < 300_000 || est > 750_000 {
				t.Fatalf("estimate %d 5 s into a cut to 500 kbps", est)
			}
			l.capacity = 4_000_000
			up := time.Duration(-1)
			for i := 1; i <= 60; i++ {
				if s.run(time.Second) >= 2_000_000 {
					up = time.Duration(i) * time.Second
					break
				}
			}
			if up < 0 {
				t.Fatalf("estimate %d 60 s after the link was whole again", s.e.Estimate())
			}
			t.Logf("back above half the link after %v", up)
		})
	}
}

// Random loss above a tenth takes the estimate down; a little loss does
// not.
func TestLoss(t *testing.T) {
	for _, c := range []struct {
		loss float64
		down bool
	}{{0.01, false}, {0.25, true}} {
		l := queueLink(20_000_000)
		l.loss, l.rnd = c.loss, rand.New(rand.NewPCG(1, 2))
		s := newSim(t, l, 1_000_000, 1_000_000)
		est := s.run(20 * time.Second)
		if down := est < 500_000; down != c.down {
			t.Errorf("%.0f%% loss: estimate %d after 20 s of 1 Mbps, want down %v", 100*c.loss, est, c.down)
		}
	}
}

// Reset starts the estimate from a probe's rate, within the bounds; the
// same report read twice counts once.
func TestResetAndRepeats(t *testing.T) {
	e := New(Config{Initial: 300_000, Min: 30_000, Max: 5_000_000})
	e.Reset(2_000_000)
	if got := e.Estimate(); got != 2_000_000 {
		t.Fatalf("estimate %d after a reset to 2 Mbps", got)
	}
	e.Reset(10_000_000)
	if got := e.Estimate(); got != 5_000_000 {
		t.Fatalf("estimate %d after a reset above the bound of 5 Mbps", got)
	}

	// Two estimators fed the same half-lost reports, one of them each
	// report twice: the loss counts once, so both cut the same.
	once, twice := New(Config{Initial: 1_000_000}), New(Config{Initial: 1_000_000})
	base := epoch
	for seq := range uint32(200) {
		for _, e := range []*Estimator{once, twice} {
			r, _ := e.Sending(seq)
			r.Sent(1200, base.Add(time.Duration(seq)*5*time.Millisecond))
		}
	}
	var acks []Ack
	for seq := range uint16(200) {
		acks = append(acks, Ack{Seq: seq, Received: seq%2 == 0, Arrival: time.Duration(seq) * 5 * time.Millisecond})
	}
	now := base.Add(time.Second)
	a, b := once.Feedback(acks, now), twice.Feedback(acks, now)
	b2 := twice.Feedback(acks, now.Add(decreaseInterval))
	if a != b || b2 != b {
		t.Fatalf("estimates %d once, %d then %d with the report repeated", a, b, b2)
	}
	if a >= 1_000_000 {
		t.Fatalf("estimate %d after half the packets lost", a)
	}
}

// A probe for more than a policed link carries loses its excess, padding
// and the media sent with it alike: that is the probe's answer, not a
// loss of the media's rate, and it does not take the estimate below the
// media the link carries. Counted by the loss bound, each probe for a
// layer the link cannot carry took the estimate below the layer it does
// carry (the layers went between the two lower ones, again and again).
func TestProbeLossNotTheLinks(t *testing.T) {
	l := &link{capacity: 1_000_000, policer: true, propagate: 20 * time.Millisecond}
	const media = 750_000 // the middle layer and the audio
	s := newSim(t, l, media, 900_000)
	if est := s.run(10 * time.Second); est < media {
		t.Fatalf("estimate %d before any probe, below the %d of media the link carries", est, media)
	}
	for i := range 5 {
		// A probe for the top layer: about 1.6 Mbps for 300 ms, then the
		// time until the next.
		s.probing(850_000, 300*time.Millisecond)
		if est := s.run(2 * time.Second); est < media {
			t.Fatalf("estimate %d after probe %d, below the %d of media the link carries", est, i+1, media)
		}
	}
	// A loss the media meets on its own still counts.
	l.capacity = 500_000
	if est := s.run(5 * time.Second); est >= media {
		t.Fatalf("estimate %d on a link cut below the media, want below %d", est, media)
	}
}
