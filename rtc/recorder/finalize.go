package recorder

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// The EBML element ids the recorder reads back.
const (
	idEBML        = 0x1A45DFA3
	idDocType     = 0x4282
	idSegment     = 0x18538067
	idSeekHead    = 0x114D9B74
	idSeek        = 0x4DBB
	idSeekID      = 0x53AB
	idSeekPos     = 0x53AC
	idInfo        = 0x1549A966
	idDuration    = 0x4489
	idDateUTC     = 0x4461
	idTracks      = 0x1654AE6B
	idCluster     = 0x1F43B675
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
	idCues        = 0x1C53BB6B
	idVoid        = 0xEC
	idTags        = 0x1254C367
	idChapters    = 0x1043A770
	idAttachments = 0x1941A469
)

// errTruncated is an element that runs past the end of the file.
var errTruncated = errors.New("truncated element")

// element is one EBML element's header.
type element struct {
	id      uint32
	off     int64 // where the element starts
	dataOff int64 // where its data starts
	size    int64 // its data's size; -1: unknown
}

func (e element) end() int64 { return e.dataOff + e.size }

// readElement reads the header of the element at off in a file of size n.
func readElement(r io.ReaderAt, off, n int64) (element, error) {
	var b [12]byte
	m, err := r.ReadAt(b[:], off)
	if m == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			err = errTruncated
		}
		return element{}, err
	}
	buf := b[:m]
	idLen := vintLen(buf[0])
	if idLen == 0 || idLen > 4 || idLen > len(buf) {
		return element{}, errTruncated
	}
	var id uint32
	for _, c := range buf[:idLen] {
		id = id<<8 | uint32(c)
	}
	rest := buf[idLen:]
	if len(rest) == 0 {
		return element{}, errTruncated
	}
	sizeLen := vintLen(rest[0])
	if sizeLen == 0 || sizeLen > len(rest) {
		return element{}, errTruncated
	}
	size := uint64(rest[0]) & (0xff >> sizeLen)
	allOnes := size == 0xff>>sizeLen
	for _, c := range rest[1:sizeLen] {
		size = size<<8 | uint64(c)
		allOnes = allOnes && c == 0xff
	}
	e := element{id: id, off: off, dataOff: off + int64(idLen+sizeLen), size: int64(size)} //nolint:gosec // checked below
	if allOnes {
		e.size = -1
	} else if size > uint64(n) || e.end() > n {
		return e, errTruncated
	}
	return e, nil
}

// vintLen is the length of the variable-size integer whose first byte is
// c (0: not a valid one).
func vintLen(c byte) int {
	for i := range 8 {
		if c&(0x80>>i) != 0 {
			return i + 1
		}
	}
	return 0
}

func readUint(r io.ReaderAt, e element) (uint64, error) {
	if e.size < 0 || e.size > 8 {
		return 0, fmt.Errorf("%w: integer of %d bytes", ErrNotRecording, e.size)
	}
	var b [8]byte
	if _, err := r.ReadAt(b[8-e.size:], e.dataOff); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// header is what a recording file's header says about where things are.
type header struct {
	segData      int64 // the segment's data: where seek positions count from
	durationPos  int64 // the Duration's 8-byte float; 0: none
	cuesPos      int64 // where the seek head says the cues are; 0: none
	firstCluster int64
	date         time.Time // the header's DateUTC: when its first frame was; zero: none
}

// scanHeader reads a recording file's header, up to its first cluster (a
// file with none yet, or with its first one cut short, is refused unless
// headerOnly is set).
func scanHeader(f *os.File, headerOnly bool) (header, error) {
	var h header
	st, err := f.Stat()
	if err != nil {
		return h, err
	}
	n := st.Size()
	e, err := readElement(f, 0, n)
	if err != nil || e.id != idEBML || e.size < 0 {
		return h, fmt.Errorf("%w: no EBML header", ErrNotRecording)
	}
	docType := ""
	for c := e.dataOff; c < e.end(); {
		ce, err := readElement(f, c, n)
		if err != nil || ce.size < 0 {
			return h, fmt.Errorf("%w: bad EBML header", ErrNotRecording)
		}
		if ce.id == idDocType && ce.size <= 16 {
			b := make([]byte, ce.size)
			if _, err := f.ReadAt(b, ce.dataOff); err != nil {
				return h, err
			}
			docType = string(bytes.TrimRight(b, "\x00"))
		}
		c = ce.end()
	}
	if docType != "webm" && docType != "matroska" {
		return h, fmt.Errorf("%w: document type %q", ErrNotRecording, docType)
	}
	seg, err := readElement(f, e.end(), n)
	if err != nil && !errors.Is(err, errTruncated) || seg.id != idSegment {
		return h, fmt.Errorf("%w: no segment", ErrNotRecording)
	}
	h.segData = seg.dataOff
	for off := seg.dataOff; ; {
		ce, err := readElement(f, off, n)
		if err != nil {
			if headerOnly && (off == n || errors.Is(err, errTruncated)) {
				return h, nil // the header, and maybe a first element begun
			}
			return h, fmt.Errorf("%w: no cluster", ErrNotRecording)
		}
		switch ce.id {
		case idCluster:
			h.firstCluster = off
			return h, nil
		case idSeekHead:
			h.cuesPos = seekTo(f, ce, n, idCues, seg.dataOff)
		case idInfo:
			for c := ce.dataOff; c < ce.end(); {
				ie, err := readElement(f, c, n)
				if err != nil || ie.size < 0 {
					break
				}
				switch {
				case ie.id == idDuration && ie.size == 8:
					h.durationPos = ie.dataOff
				case ie.id == idDateUTC && ie.size >= 1 && ie.size <= 8:
					if v, err := readUint(f, ie); err == nil {
						// A signed count of nanoseconds, in as many bytes
						// as it takes.
						shift := 64 - 8*ie.size
						h.date = dateEpoch.Add(time.Duration(int64(v<<shift) >> shift)) //nolint:gosec // sign extension
					}
				}
				c = ie.end()
			}
		}
		if ce.size < 0 {
			return h, fmt.Errorf("%w: unknown-size element %x before the clusters", ErrNotRecording, ce.id)
		}
		off = ce.end()
	}
}

// seekTo returns where a seek head says the element id is (0: nowhere).
func seekTo(f *os.File, sh element, n int64, id uint32, segData int64) int64 {
	for c := sh.dataOff; c < sh.end(); {
		se, err := readElement(f, c, n)
		if err != nil || se.size < 0 {
			return 0
		}
		if se.id == idSeek {
			var sid uint64
			var pos int64 = -1
			for d := se.dataOff; d < se.end(); {
				de, err := readElement(f, d, n)
				if err != nil || de.size < 0 {
					return 0
				}
				switch de.id {
				case idSeekID:
					sid, _ = readUint(f, de)
				case idSeekPos:
					p, err := readUint(f, de)
					if err == nil && p < uint64(n) {
						pos = int64(p) //nolint:gosec // p < n
					}
				}
				d = de.end()
			}
			if sid == uint64(id) && pos >= 0 {
				return segData + pos
			}
		}
		c = se.end()
	}
	return 0
}

func topLevel(id uint32) bool {
	switch id {
	case idCluster, idCues, idTags, idChapters, idAttachments, idSeekHead, idInfo, idTracks:
		return true
	}
	return false
}

// dateEpoch is where Matroska dates count from.
var dateEpoch = time.Date(2001, time.January, 1, 0, 0, 0, 0, time.UTC)

// Extent is the media a recording file holds, as Finalize read it back:
// after a crash the file is all there is to tell how long its recording
// ran.
type Extent struct {
	// Start is the wall time of the file's first frame (its header's
	// date); zero if the header has none.
	Start time.Time
	// Duration runs from its first frame to its last; zero without one.
	Duration time.Duration
	// Size is the file's size once finalized.
	Size int64
}

// End is the wall time of the file's last frame; zero if its start is
// not known.
func (e Extent) End() time.Time {
	if e.Start.IsZero() {
		return time.Time{}
	}
	return e.Start.Add(e.Duration)
}

// Finalize makes a file a recording left unfinished (a crash, SIGKILL, a
// full disk) what Close would have made it: it cuts an element the crash
// left half written, writes the duration of what the file holds, and
// writes the cues into the room kept for them. It changes nothing in a
// file Close finished but the duration, which it writes again alike. It
// returns what the file holds.
func Finalize(path string) (Extent, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Extent{}, fmt.Errorf("recorder: finalize: %w", err)
	}
	defer f.Close()
	h, err := scanHeader(f, false)
	if err != nil {
		return Extent{}, fmt.Errorf("recorder: finalize %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return Extent{}, fmt.Errorf("recorder: finalize: %w", err)
	}
	n := st.Size()
	scan := scanClusters(f, h, n)
	if scan.end < n {
		if err := f.Truncate(scan.end); err != nil {
			return Extent{}, fmt.Errorf("recorder: finalize %s: cut: %w", path, err)
		}
	}
	ext := Extent{Start: h.date, Size: scan.end}
	if scan.lastTC >= 0 {
		// Block times count from the file's first frame, at 0.
		ext.Duration = time.Duration(scan.lastTC) * time.Millisecond
	}
	if h.durationPos > 0 && scan.lastTC >= 0 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(float64(scan.lastTC)))
		if _, err := f.WriteAt(b[:], h.durationPos); err != nil {
			return Extent{}, fmt.Errorf("recorder: finalize %s: duration: %w", path, err)
		}
	}
	if h.cuesPos > 0 && len(scan.cues) > 0 {
		if err := writeCues(f, h.cuesPos, scan.end, scan.cues); err != nil {
			return Extent{}, fmt.Errorf("recorder: finalize %s: cues: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return Extent{}, fmt.Errorf("recorder: finalize: %w", err)
	}
	return ext, nil
}

type clusterScan struct {
	end    int64 // the end of the last whole element
	lastTC int64 // the last block's time; -1: no block
	cues   []webm.CuePoint
}

// scanClusters walks the clusters after the header, block by block, up
// to the end of the file or the first element cut short.
func scanClusters(f *os.File, h header, n int64) clusterScan {
	s := clusterScan{end: h.firstCluster, lastTC: -1}
	off := h.firstCluster
	for off < n {
		e, err := readElement(f, off, n)
		if err != nil && (e.id != idCluster || !errors.Is(err, errTruncated)) {
			return s
		}
		if e.id != idCluster {
			if e.size < 0 {
				return s
			}
			off = e.end()
			s.end = off
			continue
		}
		cend := n
		if e.size >= 0 && err == nil {
			cend = e.end()
		}
		tc, cueTrack := int64(-1), uint64(0)
		c := e.dataOff
		whole := true
		for c < cend {
			ce, err := readElement(f, c, n)
			if err == nil && topLevel(ce.id) {
				break // the next cluster (whose size may be unknown), or the cues
			}
			if err != nil || ce.size < 0 {
				whole = false
				break
			}
			switch ce.id {
			case idTimecode:
				v, err := readUint(f, ce)
				if err != nil {
					return s
				}
				tc = int64(v) //nolint:gosec // a cluster's time fits
			case idSimpleBlock:
				var b [4]byte
				if ce.size < 4 || tc < 0 {
					return s
				}
				if _, err := f.ReadAt(b[:], ce.dataOff); err != nil {
					return s
				}
				l := vintLen(b[0])
				if l != 1 {
					return s // the recorder numbers tracks from 1 to a few
				}
				track := uint64(b[0] & 0x7f)
				t := tc + int64(int16(binary.BigEndian.Uint16(b[1:3]))) //nolint:gosec // a block's relative time
				s.lastTC = max(s.lastTC, t)
				if cueTrack == 0 && b[3]&0x80 != 0 {
					cueTrack = track
				}
			}
			c = ce.end()
			s.end = c
		}
		// A cluster cut short keeps its whole blocks (Finalize cuts the
		// rest), so it gets its cue too.
		if tc >= 0 && cueTrack != 0 {
			s.cues = append(s.cues, webm.CuePoint{
				CueTime:           uint64(tc),
				CueTrackPositions: []webm.CueTrackPosition{{CueTrack: cueTrack, CueClusterPosition: uint64(e.off - h.segData)}}, //nolint:gosec // positive
			})
		}
		if !whole {
			return s
		}
		off = c
	}
	return s
}

// writeCues fills the Void at pos (the room kept for the cues) with cues,
// keeping every other one until they fit; a place that holds cues already
// is left as it is.
func writeCues(f *os.File, pos, n int64, cues []webm.CuePoint) error {
	v, err := readElement(f, pos, n)
	if err != nil || v.id != idVoid {
		return nil //nolint:nilerr // no room kept, or cues written already
	}
	room := int(v.end() - pos)
	for {
		var buf bytes.Buffer
		if err := ebml.Marshal(&struct {
			Cues webm.Cues `ebml:"Cues"`
		}{webm.Cues{CuePoint: cues}}, &buf); err != nil {
			return err
		}
		left := room - buf.Len()
		if left == 0 || left >= 9 {
			if left > 0 {
				buf.Write(voidOf(left))
			}
			_, err := f.WriteAt(buf.Bytes(), pos)
			return err
		}
		if len(cues) == 1 {
			return nil // no room for even one
		}
		half := cues[:0:0]
		for i := 0; i < len(cues); i += 2 {
			half = append(half, cues[i])
		}
		cues = half
	}
}

// voidOf is a Void element of exactly size bytes (at least 9), with an
// 8-byte size.
func voidOf(size int) []byte {
	b := make([]byte, size)
	b[0] = idVoid
	b[1] = 0x01
	binary.BigEndian.PutUint64(b[1:9], uint64(size-9)|1<<56) //nolint:gosec // size >= 9
	return b
}

// PlayablePrefix returns how many of the first bytes of f, a file a
// recording is still writing, make a playable file: its header and every
// whole block written so far, without the element the writer is in the
// middle of. Files are written with unknown-size segment and clusters, so
// such a prefix plays as it is (without cues: a player seeks by scanning).
// A file whose first cluster has not begun yet has no playable prefix (0).
// The bytes of the prefix do not change as the file grows but for the
// header's duration and, at its close, the cues written into the room kept
// for them.
func PlayablePrefix(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("recorder: playable prefix: %w", err)
	}
	h, err := scanHeader(f, false)
	if err != nil {
		if _, herr := scanHeader(f, true); herr == nil {
			return 0, nil // the header alone, or part of the first cluster
		}
		return 0, fmt.Errorf("recorder: playable prefix of %s: %w", f.Name(), err)
	}
	return scanClusters(f, h, st.Size()).end, nil
}
