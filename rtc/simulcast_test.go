package rtc

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// layerTrack is a chanTrack with an SSRC of its own, one simulcast layer.
type layerTrack struct {
	*chanTrack
	ssrc webrtc.SSRC
}

func (l *layerTrack) SSRC() webrtc.SSRC { return l.ssrc }

// pliLog records the SSRCs the PLIs sent to the publisher name.
type pliLog struct {
	mu    sync.Mutex
	ssrcs []uint32
}

func (l *pliLog) WriteRTCP(pkts []rtcp.Packet) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range pkts {
		if pli, ok := p.(*rtcp.PictureLossIndication); ok {
			l.ssrcs = append(l.ssrcs, pli.MediaSSRC)
		}
	}
	return nil
}

// since returns the SSRCs asked for from the nth request on.
func (l *pliLog) since(n int) []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]uint32(nil), l.ssrcs[min(n, len(l.ssrcs)):]...)
}

func (l *pliLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ssrcs)
}

// simulcastFixture is a Track of three VP8 layers fed by the test, on a
// manual clock.
type simulcastFixture struct {
	t      *testing.T
	clk    *clock.Manual
	plis   *pliLog
	inputs []*layerTrack
	layers []*Forwarder
	track  *Track
	seq    []uint16
	pic    []uint16
	fed    []uint64 // packets sent to each layer

	mu     sync.Mutex
	needed []string // what OnLayersNeeded was told: "needed/unneeded", rids joined

	n uint32 // the next frame number of tick
}

// tick sends frame n of the layers given (keyframes the first time), waits
// for them to be read, then runs a check.
func (fx *simulcastFixture) tick(layers ...int) {
	fx.t.Helper()
	for _, i := range layers {
		fx.frame(i, fx.n, fx.n == 0)
	}
	fx.n++
	fx.settle()
	fx.clk.Advance(DefaultLayerCheckInterval)
}

func (fx *simulcastFixture) layersNeeded() []string {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return slices.Clone(fx.needed)
}

// layerSSRC is the SSRC of layer i of a simulcastFixture.
func layerSSRC(i int) uint32 { return uint32(100 + i) }

func newSimulcastFixture(t *testing.T) *simulcastFixture {
	t.Helper()
	fx := &simulcastFixture{t: t, clk: clock.NewManual(time.Unix(1000, 0)), plis: &pliLog{}}
	for i, rid := range []string{"q", "h", "f"} {
		in := &layerTrack{chanTrack: newChanTrack(vp8Codec), ssrc: webrtc.SSRC(layerSSRC(i))}
		f, err := NewForwarder(ForwarderConfig{Track: in, RTCP: fx.plis, CacheSlots: 64})
		if err != nil {
			t.Fatal(err)
		}
		fx.inputs = append(fx.inputs, in)
		fx.layers = append(fx.layers, f)
		fx.fed = append(fx.fed, 0)
		fx.seq = append(fx.seq, uint16(1000*(i+1)))
		fx.pic = append(fx.pic, uint16(100*(i+1)))
		if i == 0 {
			fx.track, err = NewTrack(TrackConfig{Layer: f, RID: rid, Clock: fx.clk, OnLayersNeeded: func(needed, unneeded []string) {
				fx.mu.Lock()
				fx.needed = append(fx.needed, strings.Join(needed, " ")+"/"+strings.Join(unneeded, " "))
				fx.mu.Unlock()
			}})
		} else {
			err = fx.track.AddLayer(f, rid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := fx.track.Close(); err != nil {
			t.Error(err)
		}
	})
	return fx
}

// frame sends one frame of layer i in two packets, the first a keyframe's
// if key; its body names the layer. The timestamps of the layers differ
// by a layer's own offset, as each simulcast stream starts at random.
func (fx *simulcastFixture) frame(i int, n uint32, key bool) {
	fx.t.Helper()
	ts := uint32(i)*0x40000000 + n*3000
	for part := 0; part < 2; part++ {
		frameTag := byte(0x01)
		if key && part == 0 {
			frameTag = 0x00
		}
		start := byte(0x90)
		if part == 1 {
			start = 0x80
		}
		payload := []byte{start, 0x80, byte(0x80 | fx.pic[i]>>8), byte(fx.pic[i]), frameTag}
		// Higher layers are larger, and the last byte names the layer.
		payload = append(payload, make([]byte, 300*i*i)...)
		payload = append(payload, byte('0'+i))
		b := rawRTP(fx.t, 96, fx.seq[i], ts, false, nil)
		b = append(b[:12], payload...)
		if part == 1 {
			b[1] |= 0x80 // marker: the frame ends
		}
		fx.seq[i]++
		fx.fed[i]++
		fx.inputs[i].in <- b
	}
	fx.pic[i]++
}

// sizeLayers sends each layer a 24-byte keyframe of its size, waits for
// the layers to read them and runs a check, which orders the layers.
func (fx *simulcastFixture) sizeLayers(sizes [][2]int) {
	fx.t.Helper()
	for i, sz := range sizes {
		b := rawRTP(fx.t, 96, fx.seq[i], 0, false, nil)
		b = append(b[:12], 0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a,
			byte(sz[0]), byte(sz[0]>>8), byte(sz[1]), byte(sz[1]>>8), 0xff)
		fx.seq[i]++
		fx.fed[i]++
		fx.inputs[i].in <- b
	}
	fx.settle()
	fx.clk.Advance(DefaultLayerCheckInterval)
}

// settle waits until every layer has read what it was sent, so that a
// check counts it.
func (fx *simulcastFixture) settle() {
	fx.t.Helper()
	poll.Until(fx.t, "the layers' read loops", func() bool {
		for i, f := range fx.layers {
			if f.Stats().Packets != fx.fed[i] {
				return false
			}
		}
		return true
	})
}

func (fx *simulcastFixture) subscriber() (*DownTrack, *memContext) {
	fx.t.Helper()
	return fx.subscriberWith(nil)
}

// subscriberWith is subscriber, with before (if not nil) called on the
// down-track before it subscribes.
func (fx *simulcastFixture) subscriberWith(before func(*DownTrack)) (*DownTrack, *memContext) {
	fx.t.Helper()
	sink := &memContext{id: "sub", ssrc: 4242, record: true, codecs: []webrtc.RTPCodecParameters{vp8Codec}}
	dt, err := NewDownTrack(DownTrackConfig{ID: "v", StreamID: "s", Codec: vp8Codec.RTPCodecCapability})
	if err != nil {
		fx.t.Fatal(err)
	}
	fx.t.Cleanup(func() { _ = dt.Close() })
	if _, err := dt.Bind(sink); err != nil {
		fx.t.Fatal(err)
	}
	dt.TransportReady()
	if before != nil {
		before(dt)
	}
	if err := fx.track.AddSubscriber(dt); err != nil {
		fx.t.Fatal(err)
	}
	return dt, sink
}

// layerOfPacket is the layer a packet the subscriber received came from:
// the last payload byte names it, in the fixtures here as in
// rtctest.SimulcastSender.
func layerOfPacket(p sentPacket) int { return rtctest.SimulcastLayer(p.payload) }

// checkContinuous fails unless the VP8 packets form one stream: one
// SSRC, sequence numbers one apart, timestamps that never go back and
// change at each frame (a frame's packets share one), 15-bit picture ids
// that go up by one at each frame, and each layer's first packet a
// keyframe's.
func checkContinuous(t *testing.T, sent []sentPacket) {
	t.Helper()
	checkContinuousIn(t, webrtc.MimeTypeVP8, sent)
}

// checkContinuousIn is checkContinuous for packets of codec mime: VP8,
// VP9 (whose TL0PICIDX, when sent, must not skip either), or H.264,
// which has no picture ids.
func checkContinuousIn(t *testing.T, mime string, sent []sentPacket) {
	t.Helper()
	kind := codecKindOf(mime)
	pics := kind == codecVP8 || kind == codecVP9 // picture ids to check
	var d, prev picIDs
	for i, p := range sent {
		if pics && (!readPicIDs(kind, p.payload, &d) || d.picAt == 0 || !d.pic15) {
			t.Fatalf("packet %d: descriptor %x", i, p.payload)
		}
		if i == 0 {
			prev = d
			continue
		}
		q := sent[i-1]
		switch {
		case p.hdr.SSRC != q.hdr.SSRC:
			t.Fatalf("packet %d: SSRC %d after %d", i, p.hdr.SSRC, q.hdr.SSRC)
		case p.hdr.SequenceNumber != q.hdr.SequenceNumber+1:
			t.Fatalf("packet %d: sequence number %d after %d", i, p.hdr.SequenceNumber, q.hdr.SequenceNumber)
		case int32(p.hdr.Timestamp-q.hdr.Timestamp) < 0:
			t.Fatalf("packet %d: timestamp %d after %d", i, p.hdr.Timestamp, q.hdr.Timestamp)
		}
		newFrame := p.hdr.Timestamp != q.hdr.Timestamp
		// A switch may cut the old layer's last frame short: the
		// receiver drops that frame and starts on the keyframe.
		switched := layerOfPacket(p) != layerOfPacket(q)
		if newFrame != q.hdr.Marker && !(switched && newFrame) {
			t.Fatalf("packet %d: a new timestamp (%v) where the last frame ended (%v)", i, newFrame, q.hdr.Marker)
		}
		wantPic := prev.picID
		if newFrame {
			wantPic = (prev.picID + 1) & 0x7fff
		}
		if pics && d.picID != wantPic {
			t.Fatalf("packet %d: picture id %d after %d", i, d.picID, prev.picID)
		}
		if d.tl0At != 0 && prev.tl0At != 0 && d.tl0-prev.tl0 > 1 {
			t.Fatalf("packet %d: TL0PICIDX %d after %d", i, d.tl0, prev.tl0)
		}
		if switched && !startsKeyframe(kind, p.payload) {
			t.Fatalf("packet %d: layer %d starts on a delta frame", i, layerOfPacket(p))
		}
		prev = d
	}
}

// TestTrackSwitchesLayerOnKeyframe subscribes to the highest layer, then
// asks for the lowest: the subscriber keeps the high layer until the low
// one's keyframe, asked for with a PLI to the low layer's SSRC, and then
// gets the low layer alone, as one stream.
func TestTrackSwitchesLayerOnKeyframe(t *testing.T) {
	fx := newSimulcastFixture(t)
	dt, sink := fx.subscriber()
	if st := dt.Layer(); st.Current != 2 || st.Target != LayerAuto {
		t.Fatalf("a new subscriber is at %+v, want the top layer", st)
	}
	fx.frame(2, 0, true)
	fx.frame(2, 1, false)
	fx.frame(0, 0, false) // the other layers go to nobody
	fx.frame(1, 0, false)
	poll.Until(t, "the top layer's two frames", func() bool { return sink.count() == 4 })

	asked := fx.plis.count()
	dt.SetTargetLayer(0)
	if got := fx.plis.since(asked); len(got) == 0 || got[0] != layerSSRC(0) {
		t.Fatalf("PLIs after the switch began: %v, want one to SSRC %d", got, layerSSRC(0))
	}
	if st := dt.Layer(); st.Current != 2 || st.Next != 0 {
		t.Fatalf("moving: %+v", st)
	}
	fx.frame(0, 1, false) // a delta frame of the new layer: not sent
	fx.frame(2, 2, false) // the old layer goes on meanwhile
	poll.Until(t, "the old layer until the keyframe", func() bool { return sink.count() == 6 })
	fx.frame(0, 2, true)
	poll.Until(t, "the new layer's keyframe", func() bool { return sink.count() == 8 })
	fx.frame(2, 3, false) // the old layer goes to nobody now
	fx.frame(0, 3, false)
	poll.Until(t, "the new layer's next frame", func() bool { return sink.count() == 10 })

	sent := sink.sent()
	layers := make([]int, len(sent))
	for i, p := range sent {
		layers[i] = layerOfPacket(p)
	}
	want := []int{2, 2, 2, 2, 2, 2, 0, 0, 0, 0}
	for i := range want {
		if layers[i] != want[i] {
			t.Fatalf("layers sent %v, want %v", layers, want)
		}
	}
	checkContinuous(t, sent)
	if st := dt.Layer(); st.Current != 0 || st.Next != -1 {
		t.Fatalf("after the switch: %+v", st)
	}
	// The fixture's frames carry no size: the direction is unknown.
	if st := dt.Stats(); st.LayerSwitches != 1 || st.LayerSwitchesUp+st.LayerSwitchesDown != 0 {
		t.Fatalf("layer switches counted: %d, %d up, %d down; want 1 of unknown direction", st.LayerSwitches, st.LayerSwitchesUp, st.LayerSwitchesDown)
	}
	if n := fx.layers[2].Subscribers(); n != 0 {
		t.Fatalf("the layer left still has %d subscribers", n)
	}
}

// TestTrackFallsBackWhenLayerStops stops the top layer: at the checks that
// follow, its subscriber moves down to the highest layer still arriving,
// and comes back when the top layer returns.
func TestTrackFallsBackWhenLayerStops(t *testing.T) {
	fx := newSimulcastFixture(t)
	dt, sink := fx.subscriber()
	tick := fx.tick
	tick(0, 1, 2)
	for i := 0; i < LayerIdleChecks; i++ {
		tick(0, 1) // the publisher stopped its top layer
	}
	if st := dt.Layer(); st.Next != 1 {
		t.Fatalf("after the top layer stopped: %+v, want a move to layer 1", st)
	}
	if l := fx.track.Layers(); l[2].Active || !l[1].Active {
		t.Fatalf("layers %+v", l)
	}
	fx.frame(1, fx.n, true)
	fx.n++
	poll.Until(t, "the middle layer's keyframe", func() bool { return dt.Layer().Current == 1 })
	tick(0, 1, 2) // back
	if st := dt.Layer(); st.Next != 2 {
		t.Fatalf("after the top layer came back: %+v", st)
	}
	fx.frame(2, fx.n, true)
	fx.n++
	poll.Until(t, "the top layer again", func() bool { return dt.Layer().Current == 2 })
	fx.frame(2, fx.n, false)
	poll.Until(t, "the top layer's next frame", func() bool {
		s := sink.sent()
		return len(s) > 0 && layerOfPacket(s[len(s)-1]) == 2 && s[len(s)-1].hdr.Marker && len(s) >= 4
	})
	checkContinuous(t, sink.sent())
}

// TestTrackLayersMeasured checks what a Track tells of its layers: rids,
// SSRCs, sizes from the VP8 keyframes, bitrates over a check interval,
// lowest first whatever order they came in.
func TestTrackLayersMeasured(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{1280, 720}, {320, 180}, {640, 360}}) // the rids lie: q is the largest
	got := fx.track.Layers()
	wantRIDs := []string{"h", "f", "q"}
	for i, l := range got {
		if l.RID != wantRIDs[i] || !l.Active || l.Bitrate == 0 {
			t.Fatalf("layer %d: %+v (all: %+v)", i, l, got)
		}
	}
	if got[0].Width != 320 || got[0].Height != 180 || got[2].Width != 1280 || got[2].SSRC != layerSSRC(0) {
		t.Fatalf("layers %+v", got)
	}
	// 24 bytes of RTP in half a second.
	if got[0].Bitrate != 24*8*2 {
		t.Fatalf("bitrate %d, want %d", got[0].Bitrate, 24*8*2)
	}
}

// TestTrackMaxSize caps a subscriber's layers by picture size, as a room's
// quality does: the highest layer that fits, the lowest when none does,
// the top again when the cap goes.
func TestTrackMaxSize(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {720, 1280}}) // the top one is portrait
	dt, _ := fx.subscriber()
	for _, step := range []struct {
		lines, want int
	}{
		{720, 2}, // 720x1280: its smaller side fits
		{360, 1},
		{500, 1},
		{100, 0},
		{0, 2},
	} {
		dt.SetMaxSize(step.lines)
		if at := headingTo(dt); at != step.want {
			t.Fatalf("capped at %d lines: layer %+v, want %d", step.lines, dt.Layer(), step.want)
		}
	}
}

// headingTo is the layer dt receives, or moves to if it is moving.
func headingTo(dt *DownTrack) int {
	st := dt.Layer()
	if st.Next >= 0 {
		return st.Next
	}
	return st.Current
}

// TestTrackLimits picks layers by what a subscriber asks: the smallest
// that covers the size it renders, under its own cap and the room's.
func TestTrackLimits(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {1280, 720}})
	dt, _ := fx.subscriber()
	for _, step := range []struct {
		name   string
		room   int
		limits LayerLimits
		want   int
	}{
		{"a 400x225 tile", 0, LayerLimits{Width: 400, Height: 225}, 1},
		{"a portrait 225x400 tile", 0, LayerLimits{Width: 225, Height: 400}, 1},
		{"a thumbnail", 0, LayerLimits{Width: 200, Height: 100}, 0},
		{"larger than any layer", 0, LayerLimits{Width: 1920, Height: 1080}, 2},
		{"its own cap below the size", 0, LayerLimits{Width: 400, Height: 225, MaxLines: 180}, 0},
		{"the room's cap is lower", 360, LayerLimits{MaxLines: 720}, 1},
		{"its own cap is lower", 720, LayerLimits{MaxLines: 360}, 1},
		{"nothing asked", 0, LayerLimits{}, 2},
	} {
		dt.SetMaxSize(step.room)
		dt.SetLimits(step.limits)
		if at := headingTo(dt); at != step.want {
			t.Fatalf("%s: layer %+v, want %d", step.name, dt.Layer(), step.want)
		}
	}
}

// TestTrackAnnouncesLayersNeeded: the publisher is told which layers
// someone wants (the lowest always), each time that changes, as
// subscribers come, go and ask for less.
func TestTrackAnnouncesLayersNeeded(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {1280, 720}})
	dt, _ := fx.subscriber()
	dt.SetMaxSize(360)
	dt.SetLimits(LayerLimits{Width: 160, Height: 90})
	other, _ := fx.subscriber()
	dt.SetLimits(LayerLimits{})
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"q/h", "q/h f", "q f/h", "q h/f", "q/h f", "q f/h", "q h f/", "q h/f"}
	if got := fx.layersNeeded(); !slices.Equal(got, want) {
		t.Fatalf("layers announced %q, want %q", got, want)
	}
	// A stopped layer that a subscriber wants stays wanted: the publisher
	// is not told to stop it.
	dt.SetMaxSize(0)
	for i := 0; i < LayerIdleChecks+1; i++ {
		fx.frame(0, uint32(i), i == 0)
		fx.frame(1, uint32(i), i == 0)
		fx.settle()
		fx.clk.Advance(DefaultLayerCheckInterval)
	}
	if l := fx.track.Layers(); l[2].Active {
		t.Fatalf("the top layer is active: %+v", l)
	}
	if got := fx.layersNeeded(); got[len(got)-1] != "q f/h" {
		t.Fatalf("layers announced %q, want the top one wanted at last", got)
	}
}

// TestTrackAnnouncesLayersPastStart: a subscriber on its start layer (a
// guess before any estimate) leaves its ceiling wanted, so that the
// publisher keeps sending it and it is measured; the estimate's cap, once
// it comes, makes it unneeded.
func TestTrackAnnouncesLayersPastStart(t *testing.T) {
	fx := newSimulcastFixture(t)
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {1280, 720}})
	dt, _ := fx.subscriberWith(func(dt *DownTrack) { dt.bweStart.Store(1) })
	if headingTo(dt) != 0 {
		t.Fatalf("the subscriber starts on %+v, want the lowest layer", dt.Layer())
	}
	if got := fx.layersNeeded(); len(got) == 0 || got[len(got)-1] != "q f/h" {
		t.Fatalf("layers announced %q, want the top layer wanted at last", got)
	}
	dt.setBandwidthCap(0, false)
	if got := fx.layersNeeded(); got[len(got)-1] != "q/h f" {
		t.Fatalf("layers announced %q once the estimate caps the subscriber at the lowest, want only it wanted", got)
	}
}

// TestTrackChecksOnlyLayers: a track sent as one stream without a rid
// runs no layer checks; a second layer starts them.
func TestTrackChecksOnlyLayers(t *testing.T) {
	clk := clock.NewManual(time.Unix(0, 0))
	layer := func() *Forwarder {
		f, err := NewForwarder(ForwarderConfig{Track: newChanTrack(vp8Codec), RTCP: &rtcpSink{}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	track, err := NewTrack(TrackConfig{Layer: layer(), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer track.Close()
	if n := clk.Pending(); n != 0 {
		t.Fatalf("%d checks armed for a single stream", n)
	}
	if err := track.AddLayer(layer(), ""); err != nil {
		t.Fatal(err)
	}
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d checks armed for two layers, want 1", n)
	}
	clk.Advance(DefaultLayerCheckInterval)
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d checks armed after one ran, want 1", n)
	}
}

// A layer whose size no keyframe has told (its first keyframe was lost,
// and a browser sends the next only when asked) is asked for one, so
// that the subscribers' sizes can be honoured; a few times, not for ever,
// if its keyframes never tell a size.
func TestTrackAsksSizeOfLayers(t *testing.T) {
	fx := newSimulcastFixture(t)
	n0 := fx.plis.count()
	// Frames of every layer whose keyframes carry no size.
	for range 2 * maxLayerSizeRequests {
		fx.tick(0, 1, 2)
	}
	asked := map[uint32]int{}
	for _, ssrc := range fx.plis.since(n0) {
		asked[ssrc]++
	}
	for i := range fx.layers {
		if n := asked[layerSSRC(i)]; n == 0 || n > maxLayerSizeRequests {
			t.Errorf("layer %d of unknown size asked for a keyframe %d times, want 1 to %d", i, n, maxLayerSizeRequests)
		}
	}
	// Once every size is known, nothing more is asked.
	fx.sizeLayers([][2]int{{320, 180}, {640, 360}, {1280, 720}})
	n1 := fx.plis.count()
	fx.tick(0, 1, 2)
	fx.tick(0, 1, 2)
	if got := fx.plis.since(n1); len(got) != 0 {
		t.Errorf("keyframes asked of layers of known sizes: %v", got)
	}
}
