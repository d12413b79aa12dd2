package recorder

import (
	"slices"
	"time"
)

// pendingFrame waits in its group to be written in timestamp order.
type pendingFrame struct {
	ts   *trackState
	ms   int64
	key  bool
	data []byte
	at   time.Time // when it was whole
}

// group is the tracks that go into one file (a participant's, or one
// track's), and the file open for them.
type group struct {
	key, base     string
	participantID string
	identity      string
	tracks        []*trackState // live tracks
	file          *mkvFile
	// firstReady is when the first frame of a file not yet open came.
	firstReady time.Time
	pending    []pendingFrame // by ms
}

func (g *group) remove(ts *trackState) {
	g.tracks = slices.DeleteFunc(g.tracks, func(o *trackState) bool { return o == ts })
}

// insert keeps pending in ms order; a frame goes after those of equal ms,
// so that each track's frames keep their order.
func (g *group) insert(f pendingFrame) {
	i := len(g.pending)
	for i > 0 && g.pending[i-1].ms > f.ms {
		i--
	}
	g.pending = slices.Insert(g.pending, i, f)
}

// service opens g's file once its tracks are gathered and writes the
// frames held long enough to be in order (all of them if all is set).
func (w *writer) service(g *group, all bool) {
	if len(g.pending) == 0 {
		return
	}
	if g.file == nil {
		// A file cannot take a track later, so it waits for its
		// participant's tracks (a camera's first keyframe often comes after
		// the microphone's first packets): Gather at most, MaxReorder at
		// least (for the tracks of one publication, added one after the
		// other), and no longer once every track has a frame and the file
		// has audio and video.
		ready, audio, video := true, false, false
		for _, ts := range g.tracks {
			ready = ready && ts.ready
			audio = audio || ts.ready && !ts.codec.video()
			video = video || ts.ready && ts.codec.video()
		}
		whole := ready && (w.r.cfg.Layout == PerTrack || w.r.cfg.AudioOnly || audio && video)
		waited := w.now.Sub(g.firstReady)
		if !all && (!whole || waited < min(w.r.cfg.MaxReorder, w.r.cfg.Gather)) && waited < w.r.cfg.Gather {
			return
		}
		w.openFile(g)
		if g.file == nil {
			clear(g.pending)
			g.pending = g.pending[:0]
			return
		}
	}
	hold := w.r.cfg.MaxReorder + interleaveSlack
	n := 0
	for _, f := range g.pending {
		if !all && w.now.Sub(f.at) < hold {
			break
		}
		w.writeFrame(g.file, f)
		n++
	}
	clear(g.pending[:n])
	g.pending = slices.Delete(g.pending, 0, n)
}

// fileTracks are the tracks a new file has: those with a frame to write,
// in the order they were added.
func (g *group) fileTracks() []*trackState {
	var ts []*trackState
	for _, o := range g.tracks {
		if o.ready {
			ts = append(ts, o)
		}
	}
	for _, f := range g.pending {
		if !slices.Contains(ts, f.ts) {
			ts = append(ts, f.ts)
		}
	}
	slices.SortFunc(ts, func(a, b *trackState) int { return a.order - b.order })
	return ts
}
