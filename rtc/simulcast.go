package rtc

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
)

// A Track is a published track as its subscribers see it: one stream, or
// the layers of a simulcast stream (one camera sent at several sizes, each
// layer with its own SSRC and, from a browser, its own rid). Each layer is
// a Forwarder with its own read loop, packet cache and keyframe requests,
// which go to that layer's SSRC. A subscriber's DownTrack takes one layer
// at a time and moves between them on a keyframe of the layer it moves to,
// rewriting sequence numbers, timestamps and VP8 picture ids so that its
// subscriber sees one continuous stream (downtrack.go, rewrite.go).
//
// VP9 and AV1 scalable streams (SVC: the layers inside one stream) are
// forwarded whole: they are one layer here.
//
// The Track looks at its layers every CheckInterval (once it has a rid or
// a second layer): a layer that sent nothing for LayerIdleChecks looks in
// a row is inactive, and its subscribers move to the nearest active one;
// its bitrate is measured over each interval.

// Defaults for a zero TrackConfig.
const (
	DefaultLayerCheckInterval = 500 * time.Millisecond
	// LayerIdleChecks is how many checks in a row a layer must have
	// received nothing in to count as stopped: a browser stops its top
	// layers when its uplink or CPU is short, and a subscriber on a
	// stopped layer would see a frozen picture.
	LayerIdleChecks = 3
)

// maxLayerSizeRequests bounds the keyframes a layer of unknown size is
// asked for: one that arrives tells its size; a stream whose keyframes
// never do must not be made to send them for ever.
const maxLayerSizeRequests = 3

// LayerAuto is the target layer of a down-track that takes the highest
// active layer (see DownTrack.SetTargetLayer).
const LayerAuto = -1

// TrackConfig configures a Track. Layer is required.
type TrackConfig struct {
	// Layer is the first layer, the first stream the publisher sent.
	Layer *Forwarder
	// RID is its rid, "" for a track sent without.
	RID string
	// CheckInterval is how often the layers are looked at; zero means
	// DefaultLayerCheckInterval.
	CheckInterval time.Duration
	// Clock runs the checks; nil means clock.System.
	Clock clock.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnLayersNeeded, when set, is told the rids of the layers some
	// subscriber wants (and the lowest, always) and of those nobody
	// wants, lowest first, each time that changes: the publisher may stop
	// sending the unneeded ones until they are needed again. Layers the
	// Track has not received are in neither list. It is not called for a
	// track with a layer that has no rid. It is called with the Track's
	// lock held: it must return at once and not call the Track.
	OnLayersNeeded func(needed, unneeded []string)
}

// LayerInfo describes one layer of a Track, as it is received.
type LayerInfo struct {
	// RID is the layer's rid, "" when the publisher sends none.
	RID  string
	SSRC uint32
	// Width and Height are read from the layer's last keyframe, where the
	// codec carries them (VP8, H.264); 0 until one arrived.
	Width, Height int
	// Bitrate is the layer's received rate in bits per second, over the
	// last check interval; 0 before the first.
	Bitrate uint64
	// Active is false for a layer that stopped arriving.
	Active bool
}

// Track groups the layers of a published track; see the comment above.
type Track struct {
	kind  webrtc.RTPCodecType
	codec webrtc.RTPCodecParameters
	clk   clock.Clock
	every time.Duration
	log   *slog.Logger
	done  chan struct{}

	watchers sync.WaitGroup // one per layer, until its read loop ends

	mu        sync.Mutex // guards the following
	layers    []*trackLayer
	subs      map[*DownTrack]struct{}
	muted     bool
	closed    bool
	ended     bool // every layer's read loop has ended; done is closed
	err       error
	timer     clock.Timer
	lastCheck time.Time
	onNeeded  func(needed, unneeded []string)
	announced string // what onNeeded was last told, joined
	// newSink makes the sink of the layer sinkLayer (tracksink.go).
	newSink   func() Sink
	sinkLayer *Forwarder
}

type trackLayer struct {
	fwd            *Forwarder
	rid            string
	added          int    // insertion order, the tie-break of the order
	packets, bytes uint64 // at the last check
	idle           int    // checks in a row that saw no packet
	bitrate        uint64
	// rate is the last bitrate measured while the layer arrived: the
	// order of layers without a known size, which a layer that stops
	// keeps.
	rate  uint64
	ended bool
	// sizeRequests counts the keyframes asked for while its size is
	// unknown.
	sizeRequests int
}

func (l *trackLayer) active() bool { return !l.ended && l.idle < LayerIdleChecks }

// NewTrack makes a Track of cfg.Layer; more layers join with AddLayer.
func NewTrack(cfg TrackConfig) (*Track, error) {
	if cfg.Layer == nil {
		return nil, fmt.Errorf("%w: a track needs a layer", ErrBadConfig)
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultLayerCheckInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Track{
		kind:     cfg.Layer.Kind(),
		codec:    cfg.Layer.Codec(),
		clk:      cfg.Clock,
		every:    cfg.CheckInterval,
		log:      cfg.Logger,
		done:     make(chan struct{}),
		subs:     make(map[*DownTrack]struct{}),
		onNeeded: cfg.OnLayersNeeded,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.addLayerLocked(cfg.Layer, cfg.RID)
	if cfg.RID != "" {
		t.startChecks()
	}
	return t, nil
}

// startChecks starts the layer checks, unless they run: a track sent as
// one stream without a rid has nothing to choose or tell, and runs none
// until a second layer comes. t.mu is held.
func (t *Track) startChecks() {
	if t.timer != nil {
		return
	}
	for _, l := range t.layers { // the first interval starts now
		st := l.fwd.Stats()
		l.packets, l.bytes = st.Packets, st.Bytes
	}
	t.lastCheck = t.clk.Now()
	t.timer = t.clk.AfterFunc(t.every, t.check)
}

// Kind returns audio or video.
func (t *Track) Kind() webrtc.RTPCodecType { return t.kind }

// Codec returns the codec every layer is sent in.
func (t *Track) Codec() webrtc.RTPCodecParameters { return t.codec }

// AddLayer adds another layer of the same track (a simulcast stream that
// began after the first). Its subscribers move up to it if it is the
// highest.
func (t *Track) AddLayer(fwd *Forwarder, rid string) error {
	if fwd.Kind() != t.kind {
		return ErrKindMismatch
	}
	if !strings.EqualFold(fwd.Codec().MimeType, t.codec.MimeType) {
		return fmt.Errorf("%w: layer %s, track %s", ErrCodecMismatch, fwd.Codec().MimeType, t.codec.MimeType)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ended {
		return ErrClosed
	}
	t.addLayerLocked(fwd, rid)
	t.startChecks()
	t.order()
	// Until every layer's size is known the order is a guess: the
	// subscribers stay where they are, and the next check places them.
	if t.sizesKnown() {
		for dt := range t.subs {
			if err := t.selectLocked(dt); err != nil {
				t.log.Debug("select layer", "err", err)
			}
		}
		t.placeSinkLocked()
	}
	t.announceLocked()
	return nil
}

// askSizesLocked asks the layers that arrive without a known size for a
// keyframe, which tells it: until every size is known the subscribers'
// sizes cannot be honoured, and a browser whose first keyframe of a layer
// was lost sends the next only when asked. t.mu is held.
func (t *Track) askSizesLocked() {
	if len(t.layers) < 2 {
		return
	}
	for _, l := range t.layers {
		if w, _ := l.fwd.Resolution(); w != 0 || !l.active() || l.idle > 0 || l.sizeRequests >= maxLayerSizeRequests {
			continue
		}
		if l.fwd.RequestKeyframe() {
			l.sizeRequests++
		}
	}
}

// sizesKnown reports whether every layer's picture size is known. t.mu
// is held.
func (t *Track) sizesKnown() bool {
	for _, l := range t.layers {
		if w, _ := l.fwd.Resolution(); w == 0 {
			return false
		}
	}
	return true
}

func (t *Track) addLayerLocked(fwd *Forwarder, rid string) {
	fwd.SetMuted(t.muted)
	st := fwd.Stats()
	t.layers = append(t.layers, &trackLayer{fwd: fwd, rid: rid, added: len(t.layers), packets: st.Packets, bytes: st.Bytes})
	t.watchers.Add(1)
	go t.watch(fwd)
}

// watch waits for a layer's read loop to end. It belongs to the layer's
// Forwarder, which Close closes.
func (t *Track) watch(fwd *Forwarder) {
	defer t.watchers.Done()
	<-fwd.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() { // as in check: the subscribers' layers are reselected at the next
		if r := recover(); r != nil {
			t.log.Error("layer end panic", "err", fmt.Errorf("%w: layer end: %v", ErrReadLoopPanic, r))
		}
	}()
	all := true
	for _, l := range t.layers {
		if l.fwd == fwd {
			l.ended = true
		}
		all = all && l.ended
	}
	if err := fwd.Err(); err != nil && t.err == nil {
		t.err = err
	}
	if all && !t.ended {
		t.ended = true
		close(t.done)
		return
	}
	for dt := range t.subs {
		t.selectLocked(dt)
	}
	t.placeSinkLocked()
}

// Layers describes the track's layers, lowest first.
func (t *Track) Layers() []LayerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A size read since the last check may change the order.
	if t.order() {
		for dt := range t.subs {
			if err := t.selectLocked(dt); err != nil {
				t.log.Debug("select layer", "err", err)
			}
		}
		t.announceLocked()
	}
	out := make([]LayerInfo, len(t.layers))
	for i, l := range t.layers {
		w, h := l.fwd.Resolution()
		out[i] = LayerInfo{RID: l.rid, SSRC: l.fwd.ssrc, Width: w, Height: h, Bitrate: l.bitrate, Active: l.active()}
	}
	return out
}

// AddSubscriber makes dt receive this track, from the layer its target
// picks (see DownTrack.SetTargetLayer). A dt that received another track
// leaves it, as Forwarder.AddSubscriber.
func (t *Track) AddSubscriber(dt *DownTrack) error {
	if dt.kind != t.kind {
		return ErrKindMismatch
	}
	if !strings.EqualFold(dt.codec.MimeType, t.codec.MimeType) {
		return fmt.Errorf("%w: down-track %s, source %s", ErrCodecMismatch, dt.codec.MimeType, t.codec.MimeType)
	}
	if prev := dt.track.Swap(t); prev != nil && prev != t {
		prev.forget(dt)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		dt.track.CompareAndSwap(t, nil)
		return ErrClosed
	}
	t.subs[dt] = struct{}{}
	dt.bweStartTop.Store(0) // its start, if it starts, is chosen from these layers
	defer t.announceLocked()
	return t.selectLocked(dt)
}

// RemoveSubscriber stops sending the track to dt.
func (t *Track) RemoveSubscriber(dt *DownTrack) {
	dt.track.CompareAndSwap(t, nil)
	t.forget(dt)
}

// forget detaches dt from every layer of t.
func (t *Track) forget(dt *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs, dt)
	t.announceLocked()
	dt.cancelSwitch()
	if src := dt.source.Load(); t.layerOf(src) >= 0 {
		src.RemoveSubscriber(dt)
	}
}

// reselect picks dt's layer again, after its target changed.
func (t *Track) reselect(dt *DownTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[dt]; ok {
		if err := t.selectLocked(dt); err != nil {
			t.log.Debug("select layer", "err", err)
		}
		t.announceLocked()
	}
}

// selectLocked moves dt toward the layer it should receive: at once when
// it receives none of this track's layers yet, or has sent nothing of the
// one it has (a WHEP viewer's settings come after its slot took a layer),
// else through a switch on the new layer's next keyframe. t.mu is held.
func (t *Track) selectLocked(dt *DownTrack) error {
	active := make([]bool, len(t.layers))
	for i, l := range t.layers {
		active[i] = l.active()
	}
	i := pickLayer(active, t.targetOf(dt))
	if i < 0 {
		return nil // nothing arrives: stay where it is
	}
	to := t.layers[i].fwd
	cur := dt.source.Load()
	if cur == to {
		dt.cancelSwitch()
		return nil
	}
	if t.layerOf(cur) < 0 || dt.ctr.packets.Load() == 0 { // no stream to keep going
		dt.cancelSwitch()
		return to.AddSubscriber(dt)
	}
	dt.beginSwitch(to)
	return nil
}

// announceLocked tells OnLayersNeeded the layers wanted, if they changed:
// the lowest, and for each subscriber its ceiling lowered to its
// bandwidth cap, whether or not that layer arrives now: a layer the
// publisher stopped is wanted again when a subscriber's target comes back
// to it. A start layer (bweStart) is a guess, not a cap: the layers above
// it stay wanted, so that they are measured and can be allocated once the
// estimate pays for them. t.mu is held.
func (t *Track) announceLocked() {
	if t.onNeeded == nil || len(t.layers) < 2 || t.closed || t.ended {
		return
	}
	want := make([]bool, len(t.layers))
	want[0] = true
	for dt := range t.subs {
		if !dt.paused.Load() { // a paused subscriber wants no layer
			want[layerIndex(t.estimateLimit(dt, t.ceilingOf(dt)), len(want))] = true
		}
	}
	var needed, unneeded []string
	for i, l := range t.layers {
		switch {
		case l.rid == "":
			return
		case want[i]:
			needed = append(needed, l.rid)
		default:
			unneeded = append(unneeded, l.rid)
		}
	}
	if key := strings.Join(needed, " ") + "/" + strings.Join(unneeded, " "); key != t.announced {
		t.announced = key
		t.onNeeded(needed, unneeded)
	}
}

// targetOf is the layer dt should get if it arrives: its ceiling, lowered
// to what its bandwidth estimate pays for (layerchoice.go). t.mu is held.
func (t *Track) targetOf(dt *DownTrack) int {
	return t.bandwidthLimit(dt, t.ceilingOf(dt))
}

// ceilingOf is dt's target, lowered to fit its caps (the room's, its own)
// and the size it renders at. t.mu is held.
func (t *Track) ceilingOf(dt *DownTrack) int {
	target := int(dt.targetLayer.Load())
	lines := int(dt.maxSize.Load())
	if l := dt.limits.Load(); l != nil {
		if l.MaxLines > 0 && (lines == 0 || l.MaxLines < lines) {
			lines = l.MaxLines
		}
		if l.Width > 0 && l.Height > 0 {
			target = t.coverLayer(target, l.Width, l.Height)
		}
	}
	if lines > 0 {
		target = t.capLayer(target, lines)
	}
	return target
}

// coverLayer lowers target (a layer index, or LayerAuto) to the lowest
// layer whose picture covers width x height in either orientation; it
// leaves it when a size is not known yet or no layer covers it. t.mu is
// held.
func (t *Track) coverLayer(target, width, height int) int {
	target = layerIndex(target, len(t.layers))
	long, short := max(width, height), min(width, height)
	for i := 0; i < target; i++ {
		w, h := t.layers[i].fwd.Resolution()
		if w == 0 {
			return target
		}
		if max(w, h) >= long && min(w, h) >= short {
			return i
		}
	}
	return target
}

// capLayer lowers target (a layer index, or LayerAuto) to the highest
// layer whose picture's smaller side is at most lines, or whose size is
// not known; the lowest layer when none fits. t.mu is held.
func (t *Track) capLayer(target, lines int) int {
	target = layerIndex(target, len(t.layers))
	for i := target; i > 0; i-- {
		w, h := t.layers[i].fwd.Resolution()
		if w == 0 || min(w, h) <= lines {
			return i
		}
	}
	return 0
}

// layerIndex is the index of the layer target (a layer index, or
// LayerAuto for the highest) names among n layers: LayerAuto and a
// target past the top are the top.
func layerIndex(target, n int) int {
	if target < 0 || target >= n {
		return n - 1
	}
	return target
}

// pickLayer returns the index of the layer a subscriber asking for target
// (a layer index, or LayerAuto for the highest) gets, given which layers
// are active: target itself if active, else the highest active layer
// below it, else the lowest active one above it; -1 when none is active.
func pickLayer(active []bool, target int) int {
	target = layerIndex(target, len(active))
	for i := target; i >= 0; i-- {
		if active[i] {
			return i
		}
	}
	for i := target + 1; i < len(active); i++ {
		if active[i] {
			return i
		}
	}
	return -1
}

// check measures each layer over the interval since the last check, puts
// the layers in order and moves the subscribers whose layer changed.
func (t *Track) check() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.ended {
		return
	}
	// A panic here, on the clock's timer, would end the server: it is
	// logged, and the checks go on, for every subscriber's layer depends
	// on them.
	defer func() {
		if r := recover(); r != nil {
			t.log.Error("layer check panic", "err", fmt.Errorf("%w: layer check: %v", ErrReadLoopPanic, r))
			t.timer = t.clk.AfterFunc(t.every, t.check)
		}
	}()
	now := t.clk.Now()
	elapsed := now.Sub(t.lastCheck)
	t.lastCheck = now
	for _, l := range t.layers {
		st := l.fwd.Stats()
		if st.Packets == l.packets {
			l.idle++
		} else {
			l.idle = 0
		}
		if elapsed > 0 {
			l.bitrate = uint64(float64(st.Bytes-l.bytes) * 8 / elapsed.Seconds())
		}
		if l.bitrate > 0 {
			l.rate = l.bitrate
		}
		l.packets, l.bytes = st.Packets, st.Bytes
	}
	t.askSizesLocked()
	t.order()
	for dt := range t.subs {
		if err := t.selectLocked(dt); err != nil {
			t.log.Debug("select layer", "err", err)
		}
	}
	t.placeSinkLocked()
	t.announceLocked()
	t.timer = t.clk.AfterFunc(t.every, t.check)
}

// order sorts the layers lowest first: by picture size when every layer's
// is known, else by bitrate, then in the order they came. Rids say
// nothing reliable about size: each client names its layers its own way.
// It reports whether the order changed.
func (t *Track) order() bool {
	before := slices.Clone(t.layers)
	bySize := t.sizesKnown()
	slices.SortStableFunc(t.layers, func(a, b *trackLayer) int {
		if bySize {
			aw, ah := a.fwd.Resolution()
			bw, bh := b.fwd.Resolution()
			if c := cmp.Compare(aw*ah, bw*bh); c != 0 {
				return c
			}
		} else if c := cmp.Compare(a.rate, b.rate); c != 0 {
			return c
		}
		return cmp.Compare(a.added, b.added)
	})
	return !slices.Equal(before, t.layers)
}

// layerOf returns the index of fwd among t's layers, or -1. t.mu is held.
func (t *Track) layerOf(fwd *Forwarder) int {
	if fwd == nil {
		return -1
	}
	return slices.IndexFunc(t.layers, func(l *trackLayer) bool { return l.fwd == fwd })
}

// SetMuted mutes or unmutes every layer (Forwarder.SetMuted).
func (t *Track) SetMuted(muted bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.muted = muted
	for _, l := range t.layers {
		l.fwd.SetMuted(muted)
	}
}

// Done is closed when every layer's read loop has ended.
func (t *Track) Done() <-chan struct{} { return t.done }

// Err returns why the first layer that failed ended (Forwarder.Err), or
// nil. Valid after Done.
func (t *Track) Err() error {
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close stops the checks and closes every layer's Forwarder; the
// down-tracks stay usable with another source.
func (t *Track) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.watchers.Wait()
		return nil
	}
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	layers := slices.Clone(t.layers)
	subs := make([]*DownTrack, 0, len(t.subs))
	for dt := range t.subs {
		subs = append(subs, dt)
	}
	clear(t.subs)
	t.mu.Unlock()
	for _, dt := range subs {
		dt.track.CompareAndSwap(t, nil)
		dt.cancelSwitch()
	}
	var errs []error
	for _, l := range layers {
		if err := l.fwd.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	t.watchers.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("rtc: close track: %w", errs[0])
	}
	return nil
}
