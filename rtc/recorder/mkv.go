package recorder

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

const (
	// cuesReserve is the room kept after the header for the cues Close
	// writes: one cue per cluster (a keyframe, or at most clusterMax), so
	// some hours of video; beyond that ebml-go keeps every other cue.
	cuesReserve = 64 << 10
	clusterMin  = 500  // ms: a video keyframe sooner does not start a cluster
	clusterMax  = 5000 // ms: the longest cluster (and audio-only clusters)
	// maxParts bounds the names tried for one file.
	maxParts = 1000
)

// trackEntry is the Matroska TrackEntry the recorder writes (ebml-go's
// webm one has no omitempty on its Video size, which is not always known).
type trackEntry struct {
	Name         string      `ebml:"Name,omitempty"`
	TrackNumber  uint64      `ebml:"TrackNumber"`
	TrackUID     uint64      `ebml:"TrackUID"`
	CodecID      string      `ebml:"CodecID"`
	CodecPrivate []byte      `ebml:"CodecPrivate,omitempty"`
	TrackType    uint64      `ebml:"TrackType"`
	SeekPreRoll  uint64      `ebml:"SeekPreRoll,omitempty"`
	Audio        *webm.Audio `ebml:"Audio,omitempty"`
	Video        *webm.Video `ebml:"Video,omitempty"`
}

// mkvFile is an open file and its ebml-go writers (one per track).
type mkvFile struct {
	name, path string
	container  string
	out        *fileOut
	bw         []mkvcore.BlockWriteCloser
	tracks     []*trackState
	start      time.Time
	hasFrames  bool
	firstMs    int64
	lastMs     int64
	durPos     int64 // where the Duration's float is; 0: not found
	patchedMs  int64
}

// fileOut is the file ebml-go writes to. A write error is kept and the
// writes after it are dropped: ebml-go's goroutine panics on an error it
// is given (or stops reading its channel), so it is never given one.
type fileOut struct {
	f     *os.File
	stats *stats

	mu  sync.Mutex // guards err
	err error
}

func (o *fileOut) keep(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

func (o *fileOut) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (o *fileOut) Write(p []byte) (int, error) {
	if o.failed() != nil {
		return len(p), nil
	}
	n, err := o.f.Write(p)
	o.stats.bytesWritten.Add(uint64(n)) //nolint:gosec // n >= 0
	if err != nil {
		o.keep(err)
	}
	return len(p), nil
}

func (o *fileOut) WriteAt(p []byte, off int64) (int, error) {
	if o.failed() != nil {
		return len(p), nil
	}
	if _, err := o.f.WriteAt(p, off); err != nil {
		o.keep(err)
	}
	return len(p), nil
}

// Close syncs the file, so that what Close reports is on disk.
func (o *fileOut) Close() error {
	if err := o.f.Sync(); err != nil {
		o.keep(err)
	}
	if err := o.f.Close(); err != nil {
		o.keep(err)
	}
	return nil
}

func opusHead(channels uint16) []byte {
	h := []byte("OpusHead")
	h = append(h, 1, byte(channels))
	h = binary.LittleEndian.AppendUint16(h, 0) // pre-skip: WebRTC's Opus has none to skip
	h = binary.LittleEndian.AppendUint32(h, 48000)
	h = binary.LittleEndian.AppendUint16(h, 0) // output gain
	return append(h, 0)                        // mapping family 0: mono or stereo
}

// avcC builds an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1)
// from one SPS and one PPS, with 4-byte NAL unit lengths.
func avcC(sps, pps []byte) []byte {
	b := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	b = binary.BigEndian.AppendUint16(b, uint16(len(sps))) //nolint:gosec // a NAL unit fits a packet
	b = append(b, sps...)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint16(b, uint16(len(pps))) //nolint:gosec // as above
	return append(b, pps...)
}

func entryOf(ts *trackState, num int) trackEntry {
	e := trackEntry{
		Name:        ts.t.info.TrackID,
		TrackNumber: uint64(num), //nolint:gosec // num > 0
		TrackUID:    rand.Uint64() | 1,
	}
	switch ts.codec {
	case codecOpus:
		ch := ts.t.info.Codec.Channels
		if ch == 0 {
			ch = 2
		}
		e.CodecID, e.TrackType = "A_OPUS", 2
		e.CodecPrivate = opusHead(ch)
		e.SeekPreRoll = uint64(80 * time.Millisecond) // as WebM asks of Opus
		e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: uint64(ch)}
	case codecVP8:
		e.CodecID, e.TrackType = "V_VP8", 1
	case codecVP9:
		e.CodecID, e.TrackType = "V_VP9", 1
	case codecH264:
		e.CodecID, e.TrackType = "V_MPEG4/ISO/AVC", 1
		if len(ts.sps) >= 4 && len(ts.pps) > 0 {
			e.CodecPrivate = avcC(ts.sps, ts.pps)
		}
	}
	if ts.codec.video() && ts.width > 0 && ts.height > 0 {
		e.Video = &webm.Video{PixelWidth: uint64(ts.width), PixelHeight: uint64(ts.height)} //nolint:gosec // sizes > 0
	}
	return e
}

// openFile starts g's next file with the tracks it has frames of.
func (w *writer) openFile(g *group) {
	tracks := g.fileTracks()
	container, docType := "webm", "webm"
	for _, ts := range tracks {
		if ts.codec == codecH264 {
			container, docType = "mkv", "matroska"
		}
	}
	// A name taken in the directory (a recording continued by a new
	// recorder, after a restart) is passed over for the next part's.
	var (
		name, path string
		f          *os.File
		err        error
	)
	for range maxParts {
		name = w.fileName(g.base, container)
		path = filepath.Join(w.r.cfg.Dir, name)
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		w.fail(errOf("create "+name, err))
		return
	}
	out := &fileOut{f: f, stats: &w.r.stats}
	start := w.r.start.Add(time.Duration(g.pending[0].ms) * time.Millisecond)
	descs := make([]mkvcore.TrackDescription, len(tracks))
	// Clusters start on the first video track's keyframes, so that a
	// player seeks to one.
	main := uint64(0)
	for i, ts := range tracks {
		ts.num = i + 1
		descs[i] = mkvcore.TrackDescription{TrackNumber: uint64(i + 1), TrackEntry: entryOf(ts, i+1)} //nolint:gosec // i >= 0
		if ts.codec.video() && main == 0 {
			main = uint64(i + 1) //nolint:gosec // i >= 0
		}
	}
	if main == 0 {
		main = 1
	}
	header := *webm.DefaultEBMLHeader
	header.DocType = docType
	bw, err := mkvcore.NewSimpleBlockWriter(out, descs,
		mkvcore.WithEBMLHeader(&header),
		mkvcore.WithSegmentInfo(&webm.Info{
			TimecodeScale: uint64(time.Millisecond),
			MuxingApp:     "Troupe",
			WritingApp:    "Troupe",
			DateUTC:       start.UTC(),
		}),
		mkvcore.WithSeekHead(true),
		mkvcore.WithCues(cuesReserve),
		mkvcore.WithMinMaxClusterDuration(main, clusterMin, clusterMax),
		mkvcore.WithOnFatalHandler(func(err error) { w.fail(errOf("write "+name, err)) }),
		mkvcore.WithOnErrorHandler(func(err error) { w.r.log.Debug("recording frame skipped", "file", name, "err", err) }),
	)
	if err == nil {
		err = out.failed()
	}
	if err != nil {
		for _, b := range bw {
			_ = b.Close()
		}
		_ = f.Close()
		for _, ts := range tracks {
			ts.num = 0
		}
		w.fail(errOf("start "+name, err))
		return
	}
	mf := &mkvFile{name: name, path: path, container: container, out: out, bw: bw, tracks: tracks, start: start}
	if h, err := scanHeader(f, true); err == nil {
		mf.durPos = h.durationPos
	}
	g.file = mf
	w.r.log.Debug("recording file opened", "file", name, "tracks", len(tracks))
	if on := w.r.cfg.OnFile; on != nil {
		file, _ := g.describe(mf) // a stat error leaves the size zero: the name is what matters
		on(file)
	}
}

func (w *writer) writeFrame(f *mkvFile, fr pendingFrame) {
	if fr.ts.num == 0 || fr.ts.num > len(f.bw) || f.tracks[fr.ts.num-1] != fr.ts {
		w.r.stats.framesDropped.Add(1)
		return
	}
	if !f.hasFrames {
		f.hasFrames, f.firstMs, f.patchedMs = true, fr.ms, fr.ms
	}
	f.lastMs = max(f.lastMs, fr.ms)
	_, _ = f.bw[fr.ts.num-1].Write(fr.key, fr.ms, fr.data)
	w.r.stats.framesWritten.Add(1)
	w.written += uint64(len(fr.data))
	if w.written >= 1<<20 {
		w.checkDisk(true)
	}
	if f.durPos > 0 && f.lastMs-f.patchedMs >= 1000 {
		// Keep the header's duration near the truth, so that a file cut
		// short by a crash does not claim to be empty.
		f.patchedMs = f.lastMs
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(f.lastMs-f.firstMs)))
		_, _ = f.out.WriteAt(b[:], f.durPos)
	}
	if err := f.out.failed(); err != nil {
		w.fail(errOf("write "+f.name, err))
	}
}

// closeFile finishes g's file (ebml-go writes its cues and duration) and
// lists it; a file whose writing failed is repaired as Finalize would.
func (w *writer) closeFile(g *group) {
	f := g.file
	if f == nil {
		return
	}
	g.file = nil
	for _, ts := range f.tracks {
		ts.num = 0
	}
	for _, b := range f.bw {
		_ = b.Close() // the last one waits for ebml-go to finish the file
	}
	if err := f.out.failed(); err != nil {
		w.fail(errOf("write "+f.name, err))
		if _, rerr := Finalize(f.path); rerr != nil && !errors.Is(rerr, ErrNotRecording) {
			w.r.log.Warn("recording file not repaired", "file", f.name, "err", rerr)
		}
	}
	file, err := g.describe(f)
	if err != nil {
		w.fail(err)
	}
	w.files = append(w.files, file)
	w.r.log.Debug("recording file closed", "file", f.name, "size", file.Size, "duration", file.Duration)
}

// describe lists f, one of g's files, as it is now.
func (g *group) describe(f *mkvFile) (File, error) {
	file := File{
		Name:          f.name,
		ParticipantID: g.participantID,
		Identity:      g.identity,
		Container:     f.container,
		Start:         time.Duration(f.firstMs) * time.Millisecond,
		Duration:      time.Duration(f.lastMs-f.firstMs) * time.Millisecond,
		Writing:       g.file == f,
	}
	for _, ts := range f.tracks {
		file.TrackIDs = append(file.TrackIDs, ts.t.info.TrackID)
		file.Codecs = append(file.Codecs, ts.codec.String())
	}
	st, err := os.Stat(f.path)
	if err != nil {
		return file, fmt.Errorf("recorder: stat %s: %w", f.name, err)
	}
	file.Size = st.Size()
	return file, nil
}

// sortFiles puts files in the order they start (then by name).
func sortFiles(files []File) {
	slices.SortFunc(files, func(a, b File) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}
