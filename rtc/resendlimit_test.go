package rtc

import (
	"testing"
	"time"
)

func TestResendLimit(t *testing.T) {
	var l resendLimit
	t0 := time.Unix(1000, 0)
	steps := []struct {
		seq  uint16
		at   time.Duration
		want bool
	}{
		{seq: 10, at: 0, want: true},
		{seq: 10, at: 5 * time.Millisecond, want: false}, // within the gap
		{seq: 11, at: 5 * time.Millisecond, want: true},  // another packet
		{seq: 10, at: 100 * time.Millisecond, want: true},
		{seq: 10, at: 200 * time.Millisecond, want: true}, // the third resend
		{seq: 10, at: 300 * time.Millisecond, want: false},
		{seq: 10, at: time.Second, want: false},      // given up for good
		{seq: 10 + 256, at: time.Second, want: true}, // a later packet in the slot
		{seq: 10, at: 2 * time.Second, want: true},   // the number come round again
	}
	for i, s := range steps {
		if got := l.allow(s.seq, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d: allow(%d) at %v = %v, want %v", i, s.seq, s.at, got, s.want)
		}
	}
}
