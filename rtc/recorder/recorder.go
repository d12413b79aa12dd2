package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
)

// File is one file a recording wrote.
type File struct {
	// Name is the file's name inside Config.Dir.
	Name          string
	ParticipantID string
	Identity      string
	TrackIDs      []string
	// Codecs are the codecs of TrackIDs, in order ("opus", "vp8", "vp9",
	// "h264").
	Codecs []string
	// Container is "webm" or "mkv".
	Container string
	Size      int64
	// Start is where the file's first frame is on the recording's clock
	// (from the recorder's start).
	Start    time.Duration
	Duration time.Duration
	// Writing: the file is open, its writer may add to it (Files lists
	// those being written beside those closed).
	Writing bool
}

type itemKind uint8

const (
	itemRTP itemKind = iota
	itemSR
	itemTrackAdd
	itemTrackClose
	itemBarrier
	itemFiles
)

// item is what goes through the writer's queue; a value, so that a send
// allocates nothing.
type item struct {
	kind    itemKind
	t       *Track
	b       *pktBuf
	ssrc    uint32 // itemSR: the stream reported on
	ntp     uint64
	rtpTime uint32
	at      time.Time
	ack     chan struct{} // itemBarrier: closed once handled
	files   chan []File   // itemFiles: gets the list
}

// Recorder is one recording in progress.
type Recorder struct {
	cfg   Config
	log   *slog.Logger
	start time.Time // the recording clock's zero
	queue chan item
	stats stats

	stopped atomic.Bool // no more input is taken
	closeCh chan struct{}
	done    chan struct{}

	mu       sync.Mutex // guards the following
	tracks   map[string]*Track
	closing  bool
	err      error
	files    []File
	tickStop bool
	tickT    clock.Timer

	tick chan time.Time
	w    *writer // owned by the run goroutine
}

// New starts a recording into cfg.Dir.
func New(cfg Config) (*Recorder, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("recorder: create %s: %w", cfg.Dir, err)
	}
	if err := checkFree(&cfg); err != nil {
		return nil, err
	}
	start := cfg.Origin
	if start.IsZero() {
		start = cfg.Clock.Now()
	}
	r := &Recorder{
		cfg:     cfg,
		log:     cfg.Logger,
		start:   start,
		queue:   make(chan item, cfg.QueueLen),
		closeCh: make(chan struct{}),
		done:    make(chan struct{}),
		tracks:  make(map[string]*Track),
		tick:    make(chan time.Time, 1),
	}
	r.w = newWriter(r)
	// The writer's time is now, not the clock's zero, which a later part
	// sets in the past.
	r.w.now, r.w.lastDisk = cfg.Clock.Now(), cfg.Clock.Now()
	cfg.Metrics.add(r)
	r.armTick()
	go r.run()
	return r, nil
}

// tickEvery paces the writer's timeouts (reorder waits, file gathering,
// interleaving): a fraction of the shortest of them.
func (r *Recorder) tickEvery() time.Duration {
	d := r.cfg.MaxReorder / 4
	return min(max(d, 10*time.Millisecond), 100*time.Millisecond)
}

func (r *Recorder) armTick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tickStop {
		return
	}
	r.tickT = r.cfg.Clock.AfterFunc(r.tickEvery(), func() {
		select {
		case r.tick <- r.cfg.Clock.Now():
		default: // the writer has one pending already
		}
		r.armTick()
	})
}

func (r *Recorder) stopTick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tickStop = true
	if r.tickT != nil {
		r.tickT.Stop()
	}
}

// AddTrack starts recording a track; it may be called at any time while
// the recording runs (a participant joining or publishing).
func (r *Recorder) AddTrack(info TrackInfo) (*Track, error) {
	if info.ParticipantID == "" || info.TrackID == "" {
		return nil, fmt.Errorf("%w: participant and track ids are required", ErrBadTrack)
	}
	c, err := codecOf(info)
	if err != nil {
		return nil, err
	}
	if c == codecOpus && info.Codec.ClockRate != 48000 {
		return nil, fmt.Errorf("%w: opus at %d Hz", ErrBadTrack, info.Codec.ClockRate)
	}
	if c.video() && info.Codec.ClockRate != 90000 {
		return nil, fmt.Errorf("%w: video at %d Hz", ErrBadTrack, info.Codec.ClockRate)
	}
	t := &Track{r: r, info: info, codec: c, ignore: c.video() && r.cfg.AudioOnly}
	if t.ignore {
		return t, nil
	}
	r.mu.Lock()
	if r.closing || r.err != nil {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if old, ok := r.tracks[info.TrackID]; ok && !old.closed.Load() {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrDuplicateTrack, info.TrackID)
	}
	r.tracks[info.TrackID] = t
	r.mu.Unlock()
	r.control(item{kind: itemTrackAdd, t: t, at: r.cfg.Clock.Now()})
	return t, nil
}

// control hands the writer an item that must not be dropped; it waits for
// room in the queue unless the writer has stopped.
func (r *Recorder) control(it item) {
	select {
	case r.queue <- it:
	case <-r.done:
	}
}

// barrier returns once the writer has handled everything queued before
// it (or has stopped).
func (r *Recorder) barrier() {
	ack := make(chan struct{})
	r.control(item{kind: itemBarrier, ack: ack})
	select {
	case <-ack:
	case <-r.done:
	}
}

// Files lists the recording's files so far: those finished, and those
// being written as they are now (their size and duration grow). Once the
// recorder has stopped it lists what Close returns.
func (r *Recorder) Files(ctx context.Context) ([]File, error) {
	reply := make(chan []File, 1)
	select {
	case r.queue <- item{kind: itemFiles, files: reply}:
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("recorder: files: %w", ctx.Err())
	}
	select {
	case files := <-reply:
		return files, nil
	case <-r.done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Clone(r.files), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("recorder: files: %w", ctx.Err())
	}
}

// Err returns why the recording stopped by itself (wrapping ErrDiskFull
// or a write error), or nil.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Done is closed when the writer has stopped: after Close, or when the
// recording failed (Err says why). Either way its files are finished.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Close stops the recording: it writes what is still waiting (a gap still
// open counts as lost), finishes every file (cues, duration) and returns
// them. A recording that failed returns its files and its error. If ctx
// ends first, Close returns ctx's error and the writer goes on finishing
// the files; Done says when it has.
func (r *Recorder) Close(ctx context.Context) ([]File, error) {
	r.mu.Lock()
	if !r.closing {
		r.closing = true
		close(r.closeCh)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("recorder: close: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]File(nil), r.files...), r.err
}

// Stats returns the recording's counters so far.
func (r *Recorder) Stats() Stats { return r.stats.snapshot() }

func (r *Recorder) run() {
	defer close(r.done)
	defer r.stopTick()
	defer r.cfg.Metrics.remove(r)
	w := r.w
	for {
		select {
		case it := <-r.queue:
			w.handle(it)
		case now := <-r.tick:
			// What was queued before the tick came before it: handle it
			// first, so that a late writer does not judge a gap lost while
			// its retransmission waits in the queue.
			for range len(r.queue) {
				w.handle(<-r.queue)
			}
			w.onTick(now)
		case <-r.closeCh:
			r.stopped.Store(true)
			r.drainQueue(w)
			r.finish(w.closeAll(), nil)
			return
		}
		if err := w.failure(); err != nil {
			r.stopped.Store(true)
			r.log.Error("recording stopped", "err", err)
			files := w.closeAll()
			r.drainQueue(nil)
			r.finish(files, err)
			return
		}
	}
}

// drainQueue handles (or, with w nil, drops) what is already queued.
func (r *Recorder) drainQueue(w *writer) {
	for {
		select {
		case it := <-r.queue:
			if w != nil {
				w.handle(it)
			} else if it.b != nil {
				pktPool.Put(it.b)
			}
		default:
			return
		}
	}
}

func (r *Recorder) finish(files []File, err error) {
	if err == nil {
		err = r.w.failure()
	}
	sortFiles(files)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = files
	if err != nil && r.err == nil {
		r.err = err
	}
}

// errOf classifies a write error: a full disk is ErrDiskFull.
func errOf(op string, err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %s: %w", ErrDiskFull, op, err)
	}
	return fmt.Errorf("recorder: %s: %w", op, err)
}
