package recorder

import (
	"testing"
	"time"
)

// A track follows its RTP clock from its first sender report: later
// reports that agree with it within srResync (a publisher's jitter) move
// nothing, and one further off (a drift) places the track anew.
func TestSenderReportsKeepTrackClock(t *testing.T) {
	w := newWriter(&Recorder{start: epoch})
	ts := &trackState{rate: 90000, clock: &participantClock{}}
	ntp0 := epoch.Add(-time.Hour) // the publisher's clock is an hour behind
	ms := time.Millisecond
	for _, step := range []struct {
		name string
		// A report first, if report: the publisher's clock srWall at RTP
		// time srRTP.
		report  bool
		srWall  time.Duration
		srRTP   uint32
		rtpTime uint32
		arrival time.Duration
		want    int64
	}{
		{name: "the first frame, by arrival", rtpTime: 0, arrival: 100 * ms, want: 100},
		{name: "after the first report", report: true, srWall: 0, srRTP: 0, rtpTime: 9000, arrival: 200 * ms, want: 200},
		{name: "after a report 10 ms off", report: true, srWall: 210 * ms, srRTP: 18000, rtpTime: 27000, arrival: 400 * ms, want: 400},
		{name: "after a report 80 ms off", report: true, srWall: 380 * ms, srRTP: 27000, rtpTime: 36000, arrival: 500 * ms, want: 580},
	} {
		if step.report {
			w.onSenderReport(ts, toNTP(ntp0.Add(step.srWall)), step.srRTP, epoch.Add(step.arrival-10*ms))
		}
		ts.arrival = epoch.Add(step.arrival)
		// NTP's fraction rounds down: a millisecond either way.
		if got := w.mediaMs(ts, step.rtpTime); got < step.want-1 || got > step.want {
			t.Errorf("%s: at %d ms, want %d", step.name, got, step.want)
		}
	}
}
