package recorder

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
)

// Layout says how a recording's tracks are spread over files.
type Layout int

const (
	// PerParticipant writes one file per participant, with its audio and
	// video together (the default).
	PerParticipant Layout = iota
	// PerTrack writes one file per track.
	PerTrack
)

// String returns the layout's name as the API spells it.
func (l Layout) String() string {
	switch l {
	case PerParticipant:
		return "participant"
	case PerTrack:
		return "track"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout reads a layout as the API spells it ("participant", the
// default when s is empty, or "track").
func ParseLayout(s string) (Layout, error) {
	switch s {
	case "", "participant":
		return PerParticipant, nil
	case "track":
		return PerTrack, nil
	}
	return 0, fmt.Errorf("%w: unknown layout %q (participant or track)", ErrBadConfig, s)
}

// maxPart bounds Config.Part: a recording taken over this many times has
// lost its nodes in a loop.
const maxPart = 999

// Defaults used when a Config field is zero.
const (
	// DefaultMaxReorder is how long a gap in a track's sequence numbers is
	// waited on before its packets are counted lost. A recording has no
	// latency budget, so the wait is sized for repair, not for delay: one
	// NACK round trip to a publisher at up to ~200 ms RTT, plus the time
	// the packet spends behind its own NACK generator. Every packet held
	// costs memory per track, and a longer wait delays the keyframe
	// request after a real loss, so it is not longer.
	DefaultMaxReorder = 250 * time.Millisecond
	// DefaultQueueLen is the number of packets (all tracks together) that
	// may wait for the writer: over a second of 20 participants' audio and
	// video at typical rates.
	DefaultQueueLen = 8192
	// DefaultGather is how long a participant's file waits, after its
	// first frame, for the first frames of the participant's other tracks
	// (a camera's first keyframe), so that they start in one file.
	DefaultGather = 2 * time.Second
)

// Config describes one recording. The zero value of each field but Dir
// is valid and documented.
type Config struct {
	// Dir is where the files go; it is created (with its parents) if
	// missing. Required.
	Dir string
	// Layout spreads tracks over files; zero is PerParticipant.
	Layout Layout
	// AudioOnly records audio tracks only: video tracks are accepted and
	// ignored, so that the caller need not sort them out.
	AudioOnly bool
	// MaxReorder bounds the wait for a missing packet; zero is
	// DefaultMaxReorder.
	MaxReorder time.Duration
	// Gather bounds how long a participant's file waits for its other
	// tracks' first frames before it opens; zero is DefaultGather.
	Gather time.Duration
	// QueueLen is the number of packets that may wait for the writer; zero
	// is DefaultQueueLen.
	QueueLen int
	// RequestKeyframe asks the publisher of a track for a keyframe (a
	// PLI). It is called from the recorder's goroutine and must not block.
	// Nil: keyframes are not asked for, and a loss drops frames until the
	// publisher sends one by itself.
	RequestKeyframe func(trackID string)
	// RequestNACK asks for retransmissions of a track's packets. It is
	// called from the recorder's goroutine and must not block; seqs is
	// valid only during the call. Nil: gaps are waited on without asking.
	RequestNACK func(trackID string, seqs []uint16)
	// MinFreeBytes stops the recording with ErrDiskFull when the file
	// system of Dir has less free space (checked when the recording starts,
	// then every second and every MiB written). Zero: only a failed write
	// stops it.
	MinFreeBytes uint64
	// FreeSpace measures the bytes of dir's file system that an
	// unprivileged writer may still use, for MinFreeBytes; nil is the
	// operating system's figure (statfs), where it has one.
	FreeSpace func(dir string) (uint64, error)
	// Metrics counts what the recorder does; nil counts nothing.
	Metrics *Metrics
	// Logger is scoped by the caller (recording id); nil is slog.Default().
	Logger *slog.Logger
	// Clock gives arrival times and runs the writer's tick; nil is the
	// system clock.
	Clock clock.Clock
	// Origin is the zero of the recording's clock, which every file's
	// frame times count from. Zero is the moment New is called. A
	// recording continued by another recorder (a part written after a
	// failover) passes its first part's origin, so that the files of every
	// part are on one clock: a participant's part-two file starts where
	// its time in the recording is, not at zero.
	Origin time.Time
	// Part numbers the part of the recording this recorder writes: from
	// 2 on, its files are named <participant>-part<N>.<ext> (a second file
	// of one participant in the part <participant>-part<N>-2.<ext>), so
	// that they never take the name of another part's file on another
	// node. Zero and one write part one's names, <participant>.<ext>.
	Part int
	// OnFile, if set, is called from the writer goroutine with each file
	// as it opens (size and duration zero), so that the caller can record
	// its name before anything is known of it; it must not block.
	OnFile func(File)
}

func (c *Config) ensureDefaults() {
	if c.MaxReorder == 0 {
		c.MaxReorder = DefaultMaxReorder
	}
	if c.Gather == 0 {
		c.Gather = DefaultGather
	}
	if c.QueueLen == 0 {
		c.QueueLen = DefaultQueueLen
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
}

func (c *Config) validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: Dir is required", ErrBadConfig)
	case c.Layout != PerParticipant && c.Layout != PerTrack:
		return fmt.Errorf("%w: unknown layout %d", ErrBadConfig, int(c.Layout))
	case c.MaxReorder < 0 || c.MaxReorder > 10*time.Second:
		return fmt.Errorf("%w: MaxReorder %v outside 0..10s", ErrBadConfig, c.MaxReorder)
	case c.Gather < 0 || c.Gather > time.Minute:
		return fmt.Errorf("%w: Gather %v outside 0..1m", ErrBadConfig, c.Gather)
	case c.QueueLen < 0:
		return fmt.Errorf("%w: negative QueueLen", ErrBadConfig)
	case c.Part < 0 || c.Part > maxPart:
		return fmt.Errorf("%w: Part %d outside 0..%d", ErrBadConfig, c.Part, maxPart)
	}
	return nil
}
