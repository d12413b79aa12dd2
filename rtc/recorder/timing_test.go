package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/troupe-media/troupe/internal/clock"
)

// A track follows its RTP clock from its first sender report: later
// reports that agree with it within srResync (a publisher's jitter) move
// nothing, nor does one further off alone (a report dated late); two in a
// row that agree with each other (a drift) place the track anew.
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
		{name: "after a report 60 ms off, alone", report: true, srWall: 360 * ms, srRTP: 27000, rtpTime: 36000, arrival: 500 * ms, want: 500},
		{name: "after the next, back on the clock", report: true, srWall: 410 * ms, srRTP: 36000, rtpTime: 45000, arrival: 600 * ms, want: 600},
		{name: "after a report 80 ms off", report: true, srWall: 580 * ms, srRTP: 45000, rtpTime: 54000, arrival: 700 * ms, want: 700},
		{name: "after the next, which agrees", report: true, srWall: 680 * ms, srRTP: 54000, rtpTime: 63000, arrival: 800 * ms, want: 880},
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

// A report of the stream a track is moved to (a simulcast layer) that
// comes before that stream's first packet waits for it, then maps it: the
// new stream goes on from the old one on the publisher's clock.
func TestSenderReportOfTheNextStream(t *testing.T) {
	clk := clock.NewManual(epoch)
	r, err := New(Config{Dir: t.TempDir(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Close(context.Background()) })
	tr, err := r.AddTrack(opusInfo("p", "a"))
	if err != nil {
		t.Fatal(err)
	}
	ntp0 := epoch.Add(-time.Hour)
	opus := []byte{0x78, 0x01, 0x02, 0x03}
	send := func(ssrc uint32, seq uint16, ts uint32) {
		tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: ssrc, SequenceNumber: seq, Timestamp: ts, PayloadType: 111}, Payload: opus})
	}
	send(1, 10, 0)
	tr.WriteSenderReport(1, toNTP(ntp0), 0)
	// Stream 2's clock is its own: its RTP time 5000 is 100 ms after
	// stream 1's 0 on the publisher's.
	tr.WriteSenderReport(2, toNTP(ntp0.Add(100*time.Millisecond)), 5000)
	r.barrier()
	ts := r.w.tracks[tr]
	first := ts.lastMs
	if ts.nextSR.ssrc != 2 || ts.srWall != ntpTime(toNTP(ntp0)) {
		t.Fatalf("before stream 2: waiting %+v, mapped at %v", ts.nextSR, ts.srWall)
	}
	clk.Advance(300 * time.Millisecond) // arrival says nothing once mapped
	send(2, 500, 5000+4800)             // 100 ms on in stream 2
	r.barrier()
	if ts.nextSR.ssrc != 0 || !ts.hasSR || ts.srWall != ntpTime(toNTP(ntp0.Add(100*time.Millisecond))) {
		t.Fatalf("after stream 2's first packet: waiting %+v, mapped at %v", ts.nextSR, ts.srWall)
	}
	if got := ts.lastMs - first; got < 199 || got > 200 {
		t.Fatalf("stream 2's first frame %d ms after stream 1's, want 200", got)
	}
}
