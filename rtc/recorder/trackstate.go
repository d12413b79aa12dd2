package recorder

import "time"

// trackState is the writer's side of a Track.
type trackState struct {
	t     *Track
	codec codec
	rate  int64
	order int // the order tracks were added in, for a file's track list
	g     *group
	clock *participantClock

	closed bool
	ro     reorder
	dp     depacketizer

	// Timing: see timing.go.
	tsInit  bool
	tsLast  uint32
	tsExt   int64
	hasBase bool
	baseExt int64
	baseAt  time.Time
	hasSR   bool
	srExt   int64
	srWall  time.Time
	// A report off the track's clock, waiting for the next to agree.
	hasPend  bool
	pendExt  int64
	pendWall time.Time
	hasMs    bool
	lastMs   int64
	// nextSR is the last report of a stream the track has not switched
	// to yet; ssrc 0 when none.
	nextSR  senderReport
	arrival time.Time // of the packet being depacketized

	// waitKey: frames are dropped until a keyframe (a video track's start,
	// a loss); ready: the track has had a frame to write.
	waitKey, ready bool
	lastKeyReq     time.Time

	// What a video track's file header needs: its picture size, and an
	// H.264 track's parameter sets (for the avcC).
	width, height int
	sps, pps      []byte

	num int // track number in the group's open file; 0: none
}

func newTrackState(t *Track, order int) *trackState {
	return &trackState{
		t:       t,
		codec:   t.codec,
		rate:    int64(t.info.Codec.ClockRate),
		order:   order,
		dp:      newDepacketizer(t.codec),
		waitKey: t.codec.video(),
	}
}

// frame takes a whole frame: a video track after a loss drops frames until
// its next keyframe; the frame is copied and queued in its group's file.
func (w *writer) frame(ts *trackState, rtpTime uint32, key bool, data []byte) {
	if ts.waitKey {
		if !key {
			w.r.stats.framesDropped.Add(1)
			return
		}
		ts.waitKey = false
	}
	ms := w.mediaMs(ts, rtpTime)
	g := ts.g
	if !ts.ready {
		ts.ready = true
		if g.firstReady.IsZero() {
			g.firstReady = ts.arrival
		}
	}
	if g.file != nil && ts.num == 0 {
		// The open file was started without this track: start a new part
		// with all of them, each video track from a keyframe.
		w.service(g, true)
		w.closeFile(g)
		g.firstReady = ts.arrival
		for _, o := range g.tracks {
			if o != ts && o.codec.video() && !o.waitKey {
				o.waitKey = true
				w.requestKeyframe(o)
			}
		}
	}
	g.insert(pendingFrame{ts: ts, ms: ms, key: key, data: append([]byte(nil), data...), at: ts.arrival})
	w.service(g, false)
}
