package recorder

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// keyframeRetry is how long a video track waits for the keyframe it asked
// for before it asks again.
const keyframeRetry = time.Second

// interleaveSlack is added to MaxReorder to hold a file's frames before
// they are written in timestamp order: frames of one file's tracks leave
// their reorder buffers up to MaxReorder apart, and their sender reports
// may move them by a little more.
const interleaveSlack = 200 * time.Millisecond

// writer is the state of the recorder's goroutine: every field is used
// from it alone.
type writer struct {
	r      *Recorder
	now    time.Time
	tracks map[*Track]*trackState
	groups map[string]*group
	// parts counts the files of each name, so that a participant's second
	// file (a rejoin, a late track) gets the next part number.
	parts    map[string]int
	names    map[string]struct{}
	clocks   map[string]*participantClock
	files    []File
	nackBuf  []uint16
	errMu    sync.Mutex // guards err: the container goroutines report too
	err      error
	added    int    // tracks added so far
	written  uint64 // bytes since the last free-space check
	lastDisk time.Time
}

func newWriter(r *Recorder) *writer {
	return &writer{
		r:        r,
		now:      r.start,
		tracks:   make(map[*Track]*trackState),
		groups:   make(map[string]*group),
		parts:    make(map[string]int),
		names:    make(map[string]struct{}),
		clocks:   make(map[string]*participantClock),
		lastDisk: r.start,
	}
}

func (w *writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

func (w *writer) failure() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *writer) advance(t time.Time) {
	if t.After(w.now) {
		w.now = t
	}
}

func (w *writer) handle(it item) {
	switch it.kind {
	case itemRTP:
		ts := w.tracks[it.t]
		if ts == nil || ts.closed {
			pktPool.Put(it.b)
			return
		}
		w.advance(it.b.arrival)
		w.onPacket(ts, it.b)
	case itemSR:
		if ts := w.tracks[it.t]; ts != nil && !ts.closed {
			w.advance(it.at)
			sr := senderReport{ssrc: it.ssrc, ntp: it.ntp, rtpTime: it.rtpTime, at: it.at}
			if ts.ro.started && sr.ssrc != ts.ro.ssrc {
				// Of the stream the track moves to: it maps that
				// stream's first packet on (onPacket).
				ts.nextSR = sr
				return
			}
			w.onSenderReport(ts, sr.ntp, sr.rtpTime, sr.at)
		}
	case itemTrackAdd:
		w.advance(it.at)
		w.addTrack(it.t)
	case itemTrackClose:
		if ts := w.tracks[it.t]; ts != nil {
			w.closeTrack(ts)
		}
	case itemBarrier:
		close(it.ack)
	case itemFiles:
		it.files <- w.snapshot()
	}
}

func (w *writer) onTick(now time.Time) {
	w.advance(now)
	for _, ts := range w.tracks {
		if ts.closed {
			continue
		}
		if ts.ro.count > 0 {
			w.drain(ts)
		}
		if ts.waitKey && w.now.Sub(ts.lastKeyReq) >= keyframeRetry {
			w.requestKeyframe(ts)
		}
	}
	for _, g := range w.groups {
		w.service(g, false)
	}
	w.checkDisk(false)
}

// checkDisk measures free space every second, or at once after a MiB.
func (w *writer) checkDisk(force bool) {
	if w.r.cfg.MinFreeBytes == 0 {
		return
	}
	if !force && w.now.Sub(w.lastDisk) < time.Second && w.written < 1<<20 {
		return
	}
	w.lastDisk, w.written = w.now, 0
	if err := checkFree(&w.r.cfg); err != nil {
		w.fail(err)
	}
}

func (w *writer) addTrack(t *Track) {
	w.added++
	ts := newTrackState(t, w.added)
	w.tracks[t] = ts
	key := t.info.ParticipantID
	if w.r.cfg.Layout == PerTrack {
		key = t.info.ParticipantID + "\x00" + t.info.TrackID
	}
	g := w.groups[key]
	if g == nil {
		base := sanitize(t.info.ParticipantID)
		if w.r.cfg.Layout == PerTrack {
			base += "-" + sanitize(t.info.TrackID)
		}
		if n := w.r.cfg.Part; n > 1 {
			base += "-part" + strconv.Itoa(n)
		}
		g = &group{key: key, base: base, participantID: t.info.ParticipantID, identity: t.info.Identity}
		w.groups[key] = g
	}
	ts.g = g
	g.tracks = append(g.tracks, ts)
	pc := w.clocks[t.info.ParticipantID]
	if pc == nil {
		pc = &participantClock{}
		w.clocks[t.info.ParticipantID] = pc
	}
	pc.live++
	ts.clock = pc
	if ts.codec.video() {
		w.requestKeyframe(ts)
	}
}

func (w *writer) closeTrack(ts *trackState) {
	if ts.closed {
		return
	}
	w.flushReorder(ts)
	ts.closed = true
	delete(w.tracks, ts.t)
	ts.clock.live--
	if ts.clock.live == 0 {
		// A publisher that comes back may come with another NTP clock.
		delete(w.clocks, ts.t.info.ParticipantID)
	}
	g := ts.g
	g.remove(ts)
	if len(g.tracks) == 0 {
		w.service(g, true)
		w.closeFile(g)
		delete(w.groups, g.key)
		return
	}
	w.service(g, false)
}

// closeAll ends every track and file, for Close and on failure.
func (w *writer) closeAll() []File {
	for _, ts := range w.tracks {
		w.closeTrack(ts)
	}
	for _, g := range w.groups {
		w.service(g, true)
		w.closeFile(g)
	}
	clear(w.groups)
	return w.files
}

func (w *writer) requestKeyframe(ts *trackState) {
	ts.lastKeyReq = w.now
	w.r.stats.keyframeRequests.Add(1)
	if f := w.r.cfg.RequestKeyframe; f != nil {
		f(ts.t.info.TrackID)
	}
}

func (w *writer) requestNACK(ts *trackState, from, to uint16) {
	w.nackBuf = w.nackBuf[:0]
	for s := from; s != to && len(w.nackBuf) < maxNACK; s++ {
		if ts.ro.ring[s&ringMask] == nil {
			w.nackBuf = append(w.nackBuf, s)
		}
	}
	if len(w.nackBuf) == 0 {
		return
	}
	w.r.stats.nacks.Add(uint64(len(w.nackBuf)))
	if f := w.r.cfg.RequestNACK; f != nil {
		f(ts.t.info.TrackID, w.nackBuf)
	}
}

// sanitize keeps a file name to letters, digits, '-' and '_', so that an
// id from outside can never name a path.
func sanitize(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}

// fileName returns the next free name for base: base.ext, then
// base-2.ext... (names are unique in the recording even where two ids
// sanitize alike).
func (w *writer) fileName(base, ext string) string {
	for {
		w.parts[base]++
		name := base + "." + ext
		if n := w.parts[base]; n > 1 {
			name = base + "-" + strconv.Itoa(n) + "." + ext
		}
		if _, used := w.names[name]; !used {
			w.names[name] = struct{}{}
			return name
		}
	}
}

// snapshot lists the files finished and those being written.
func (w *writer) snapshot() []File {
	files := slices.Clone(w.files)
	for _, g := range w.groups {
		if g.file != nil {
			if f, err := g.describe(g.file); err == nil {
				files = append(files, f)
			}
		}
	}
	sortFiles(files)
	return files
}
