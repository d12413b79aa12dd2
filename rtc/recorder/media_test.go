package recorder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/troupe-media/troupe/internal/clock"
)

// The tests publish the clips in testdata as a WebRTC publisher would:
// real encoded frames, packetized by pion. The clips were made once with
// Debian's ffmpeg:
//
//go:generate sh -c "cd testdata && sh make.sh"

var epoch = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// clipFrame is one encoded frame and when it was captured.
type clipFrame struct {
	at   time.Duration
	data []byte
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadIVF(t testing.TB, name string) []clipFrame {
	t.Helper()
	r, h, err := ivfreader.NewWith(bytes.NewReader(readFile(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	var fs []clipFrame
	for {
		data, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		// One frame per time base unit (make.sh writes no other); the
		// reader's own Timestamp is not in seconds.
		at := time.Duration(len(fs)) * time.Second * time.Duration(h.TimebaseNumerator) / time.Duration(h.TimebaseDenominator)
		fs = append(fs, clipFrame{at: at, data: data})
	}
}

// loadOgg reads the Opus packets of an Ogg file written one packet per
// page (make.sh asks ffmpeg for 20 ms pages).
func loadOgg(t testing.TB, name string) []clipFrame {
	t.Helper()
	r, _, err := oggreader.NewWith(bytes.NewReader(readFile(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	var fs []clipFrame
	for {
		data, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(data, []byte("OpusTags")) {
			continue
		}
		fs = append(fs, clipFrame{at: time.Duration(len(fs)) * 20 * time.Millisecond, data: data})
	}
}

// loadH264 reads an Annex B stream into access units (one slice per
// picture, as make.sh encodes), each with its start codes.
func loadH264(t testing.TB, name string, fps int) []clipFrame {
	t.Helper()
	r, err := h264reader.NewReader(bytes.NewReader(readFile(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	var fs []clipFrame
	var au []byte
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		au = append(au, 0, 0, 0, 1)
		au = append(au, nal.Data...)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr {
			fs = append(fs, clipFrame{at: time.Duration(len(fs)) * time.Second / time.Duration(fps), data: au})
			au = nil
		}
	}
}

// source is one published track.
type source struct {
	info   TrackInfo
	frames []clipFrame
	delay  time.Duration    // network delay of this track's packets
	offset time.Duration    // when the clip starts on the schedule
	until  time.Duration    // the clip's time at which the track ends (0: at its end)
	mute   [2]time.Duration // a span of the clip not sent (muted)
	close  bool             // Close the track after its last frame
}

func (s source) sends(f clipFrame) bool {
	return (s.until == 0 || f.at < s.until) && (f.at < s.mute[0] || f.at >= s.mute[1])
}

func opusInfo(participant, track string) TrackInfo {
	return TrackInfo{ParticipantID: participant, Identity: "id-" + participant, TrackID: track, Kind: webrtc.RTPCodecTypeAudio,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}}}
}

func videoInfo(participant, track, mime string) TrackInfo {
	return TrackInfo{ParticipantID: participant, Identity: "id-" + participant, TrackID: track, Kind: webrtc.RTPCodecTypeVideo,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}}}
}

// event is one packet or sender report reaching the recorder, or a track
// being published or closed.
type event struct {
	at    time.Duration
	src   int
	pkt   *rtp.Packet
	sr    bool
	ntp   uint64
	ts    uint32
	add   bool
	close bool
}

// impair describes a publisher's bad path.
type impair struct {
	seed    uint64
	loss    float64 // share of packets lost on the first send
	repair  bool    // lost packets come again when the recorder NACKs them
	reorder float64 // share of packets delayed behind the next few
	dup     float64 // share of packets sent twice
	noSR    bool    // no sender reports
}

func toNTP(t time.Time) uint64 {
	secs := uint64(t.Unix() + 2208988800) //nolint:gosec // after 1900
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

// schedule packetizes every source's frames and returns what reaches the
// recorder, in order of arrival.
func schedule(srcs []source, imp impair) []event {
	rng := rand.New(rand.NewPCG(imp.seed, 7))
	var evs []event
	for i, s := range srcs {
		var pay rtp.Payloader
		rate := uint32(90000)
		switch s.info.Codec.MimeType {
		case webrtc.MimeTypeOpus:
			pay, rate = &codecs.OpusPayloader{}, 48000
		case webrtc.MimeTypeVP8:
			pay = &codecs.VP8Payloader{EnablePictureID: true}
		case webrtc.MimeTypeVP9:
			pay = &codecs.VP9Payloader{}
		case webrtc.MimeTypeH264:
			pay = &codecs.H264Payloader{}
		}
		ssrc := uint32(1000 + i)                                                                       //nolint:gosec // small
		p := rtp.NewPacketizer(1200, 96, ssrc, pay, rtp.NewFixedSequencer(uint16(rng.Uint64())), rate) //nolint:gosec // any start
		ts0 := uint32(rng.Uint64())
		rtpAt := func(d time.Duration) uint32 { return ts0 + uint32(int64(d)*int64(rate)/int64(time.Second)) } //nolint:gosec // wraps on purpose
		evs = append(evs, event{at: s.offset, src: i, add: true})
		last := time.Duration(0)
		for _, f := range s.frames {
			if !s.sends(f) {
				continue
			}
			last = f.at
			for _, pk := range p.Packetize(f.data, 0) {
				pk.Timestamp = rtpAt(f.at)
				evs = append(evs, event{at: s.offset + f.at + s.delay, src: i, pkt: pk})
			}
		}
		if !imp.noSR {
			for at := 500 * time.Millisecond; at <= last; at += time.Second {
				evs = append(evs, event{at: s.offset + at + s.delay, src: i, sr: true, ntp: toNTP(epoch.Add(-time.Hour).Add(s.offset + at)), ts: rtpAt(at)})
			}
		}
		if s.close {
			evs = append(evs, event{at: s.offset + last + s.delay + time.Millisecond, src: i, close: true})
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return int(a.at - b.at) })
	// The path's faults.
	var out []event
	for _, e := range evs {
		if e.pkt == nil {
			out = append(out, e)
			continue
		}
		switch {
		case rng.Float64() < imp.loss:
			if imp.repair {
				e.at = -1 // held for a NACK
				out = append(out, e)
			}
			continue
		case rng.Float64() < imp.reorder:
			e.at += 15 * time.Millisecond
		}
		out = append(out, e)
		if rng.Float64() < imp.dup {
			d := e
			d.at += 5 * time.Millisecond
			out = append(out, d)
		}
	}
	return out
}

// publisher feeds a recorder the events of a schedule, on a manual clock,
// and answers its NACKs from what it sent (or held back).
type publisher struct {
	t      testing.TB
	r      *Recorder
	srcs   []source
	clk    *clock.Manual
	tracks []*Track
	start  time.Time
	mu     sync.Mutex // guards the following
	held   map[[2]uint32]event
	due    []*event
}

func newPublisher(t testing.TB, clk *clock.Manual) *publisher {
	return &publisher{t: t, clk: clk, held: make(map[[2]uint32]event)}
}

func (p *publisher) onNACK(trackID string, seqs []uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, tr := range p.tracks {
		if tr == nil || tr.ID() != trackID {
			continue
		}
		for _, s := range seqs {
			k := [2]uint32{uint32(i), uint32(s)} //nolint:gosec // small
			if e, ok := p.held[k]; ok {
				delete(p.held, k)
				e.at = p.clk.Now().Sub(p.start) + 40*time.Millisecond
				p.due = append(p.due, &e)
			}
		}
	}
}

// run plays the events from the clock's current time; a packet held back
// (lost on its first send) is sent again a round trip (40 ms) after the
// recorder NACKs it, or never.
func (p *publisher) run(evs []event) {
	p.start = p.clk.Now()
	for _, e := range evs {
		if e.at < 0 {
			p.mu.Lock()
			p.held[[2]uint32{uint32(e.src), uint32(e.pkt.SequenceNumber)}] = e //nolint:gosec // small
			p.mu.Unlock()
			continue
		}
		p.resend(e.at)
		p.deliver(e)
	}
	p.resend(time.Duration(math.MaxInt64))
}

// resend sends the NACKed packets due by at.
func (p *publisher) resend(at time.Duration) {
	for {
		p.mu.Lock()
		var next *event
		for _, e := range p.due {
			if e.at <= at && (next == nil || e.at < next.at) {
				next = e
			}
		}
		if next != nil {
			p.due = slices.DeleteFunc(p.due, func(e *event) bool { return e == next })
		}
		p.mu.Unlock()
		if next == nil {
			return
		}
		p.deliver(*next)
	}
}

func (p *publisher) deliver(e event) {
	if d := p.start.Add(e.at).Sub(p.clk.Now()); d > 0 {
		p.clk.Advance(d)
	}
	switch {
	case e.add:
		tr, err := p.r.AddTrack(p.srcs[e.src].info)
		if err != nil {
			p.t.Fatal(err)
		}
		p.mu.Lock()
		p.tracks[e.src] = tr
		p.mu.Unlock()
	case e.close:
		p.tracks[e.src].Close()
	case e.sr:
		p.tracks[e.src].WriteSenderReport(e.ntp, e.ts)
	default:
		p.tracks[e.src].WriteRTP(e.pkt)
	}
	// The writer is a goroutine of its own: wait for it, so that what it
	// asks for (NACKs) is known before the next event, as it would be on a
	// real path where packets are milliseconds apart.
	p.r.barrier()
}

// publishing makes a recorder on a manual clock and a publisher of srcs
// that answers its NACKs; cfg's Clock, QueueLen (room for every packet)
// and RequestNACK are set here. The recorder is closed when the test ends.
func publishing(t testing.TB, cfg Config, srcs []source) (*Recorder, *publisher) {
	t.Helper()
	clk := clock.NewManual(epoch)
	pub := newPublisher(t, clk)
	cfg.Clock = clk
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.QueueLen = 1 << 16
	cfg.RequestNACK = pub.onNACK
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Close(context.Background()) })
	pub.r, pub.srcs, pub.tracks = r, srcs, make([]*Track, len(srcs))
	return r, pub
}

// record publishes srcs into a new recorder and returns its files.
func record(t *testing.T, cfg Config, srcs []source, imp impair) ([]File, *Recorder) {
	t.Helper()
	r, pub := publishing(t, cfg, srcs)
	pub.run(schedule(srcs, imp))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return files, r
}

type probe struct {
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Streams []struct {
		CodecName string `json:"codec_name"`
		CodecType string `json:"codec_type"`
	} `json:"streams"`
}

func (p probe) duration(t testing.TB) time.Duration {
	t.Helper()
	s, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("duration %q: %v", p.Format.Duration, err)
	}
	return time.Duration(s * float64(time.Second))
}

func (p probe) codecs() []string {
	var cs []string
	for _, s := range p.Streams {
		cs = append(cs, s.CodecName)
	}
	return cs
}

func ffprobe(t testing.TB, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=format_name,duration:stream=codec_name,codec_type",
		"-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	return p
}

func within(got, want time.Duration, share float64) bool {
	d := got - want
	return d >= -time.Duration(float64(want)*share) && d <= time.Duration(float64(want)*share)
}

// span is how long a clip's frames last, first to last.
func span(fs []clipFrame) time.Duration { return fs[len(fs)-1].at - fs[0].at }
