package recorder

import "time"

// srResync is how far a sender report may place a track from where its
// RTP clock has it before the track is placed anew: under the 50 ms that
// keeps audio and video in sync, and over the jitter of a publisher's
// reports.
const srResync = 30 * time.Millisecond

// participantClock puts one publisher's NTP clock (its sender reports) on
// the recording's clock: every track of a participant shares it, which is
// what keeps its audio and video in sync.
type participantClock struct {
	live   int // tracks of the participant being recorded
	set    bool
	offset time.Duration // recording wall time minus the publisher's NTP time
}

// senderReport is a stream's report as the writer keeps it.
type senderReport struct {
	ssrc    uint32
	ntp     uint64
	rtpTime uint32
	at      time.Time
}

// unwrap extends an RTP timestamp to 64 bits, near the last one seen.
func (ts *trackState) unwrap(rtpTime uint32) int64 {
	if !ts.tsInit {
		ts.tsInit, ts.tsLast, ts.tsExt = true, rtpTime, int64(rtpTime)
		return ts.tsExt
	}
	ts.tsExt += int64(int32(rtpTime - ts.tsLast))
	ts.tsLast = rtpTime
	return ts.tsExt
}

func (ts *trackState) restartTiming() {
	ts.tsInit, ts.hasBase, ts.hasSR, ts.hasPend = false, false, false, false
}

func (ts *trackState) rtpDuration(d int64) time.Duration {
	return time.Duration(d * int64(time.Second) / ts.rate)
}

// ntpTime converts a 64-bit NTP timestamp (seconds since 1900 in 32.32
// fixed point) to a time.
func ntpTime(ntp uint64) time.Time {
	const ntpToUnix = 2208988800
	secs := int64(ntp>>32) - ntpToUnix
	frac := (ntp & 0xffffffff) * uint64(time.Second) >> 32
	return time.Unix(secs, int64(frac)) //nolint:gosec // frac < 1e9
}

func (w *writer) onSenderReport(ts *trackState, ntp uint64, rtpTime uint32, at time.Time) {
	wall := ntpTime(ntp)
	ext := ts.unwrap(rtpTime)
	pc := ts.clock
	if !pc.set {
		// The first report of the participant fixes its offset, so that the
		// track it came on goes on without a jump from its arrival times.
		mapped := at
		if ts.hasBase {
			mapped = ts.baseAt.Add(ts.rtpDuration(ext - ts.baseExt))
		}
		pc.offset, pc.set = mapped.Sub(wall), true
	}
	if ts.hasSR {
		// A track follows its RTP clock from its first report on: a report
		// that agrees with it within srResync moves nothing, so that the
		// publisher's jitter between its RTP and NTP clocks does not shake
		// the frames' times; one that does not (a drift grown over a long
		// recording, a clock reset) places the track anew.
		d := wall.Sub(ts.srWall.Add(ts.rtpDuration(ext - ts.srExt)))
		if d > -srResync && d < srResync {
			ts.hasPend = false
			return
		}
		// One report off is believed once the next agrees with it: a
		// publisher that dates its reports by its last packet's sending
		// (pion does) sends one off by that packet's lateness now and
		// then, which would move the track there and back, the frames
		// written in between squeezed a millisecond apart.
		if !ts.hasPend || !agrees(ts.pendWall, ts.pendExt, wall, ext, ts) {
			ts.pendExt, ts.pendWall, ts.hasPend = ext, wall, true
			return
		}
		ts.hasPend = false
	}
	ts.srExt, ts.srWall, ts.hasSR = ext, wall, true
}

// agrees reports whether a report (wall at ext) is within srResync of
// where an earlier one (atWall at atExt) and the track's RTP clock put it.
func agrees(atWall time.Time, atExt int64, wall time.Time, ext int64, ts *trackState) bool {
	d := wall.Sub(atWall.Add(ts.rtpDuration(ext - atExt)))
	return d > -srResync && d < srResync
}

// mediaMs places an RTP time of ts on the recording's clock, in
// milliseconds from its start: through the track's sender report, or its
// frames' arrival before it has one. A track's times never go back.
func (w *writer) mediaMs(ts *trackState, rtpTime uint32) int64 {
	ext := ts.unwrap(rtpTime)
	if !ts.hasBase {
		ts.hasBase, ts.baseExt, ts.baseAt = true, ext, ts.arrival
	}
	var at time.Time
	if ts.hasSR {
		at = ts.srWall.Add(ts.rtpDuration(ext - ts.srExt)).Add(ts.clock.offset)
	} else {
		// The base follows the least delayed frame, so that the first
		// frame's own delay (a retransmission, a queue) does not shift
		// the track.
		if least := ts.arrival.Add(-ts.rtpDuration(ext - ts.baseExt)); least.Before(ts.baseAt) {
			ts.baseAt = least
		}
		at = ts.baseAt.Add(ts.rtpDuration(ext - ts.baseExt))
	}
	ms := max(at.Sub(w.r.start).Milliseconds(), 0)
	if ts.hasMs && ms <= ts.lastMs {
		ms = ts.lastMs + 1
	}
	ts.hasMs, ts.lastMs = true, ms
	return ms
}
