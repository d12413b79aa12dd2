package recorder

import "sync/atomic"

// Stats are a recording's counters.
type Stats struct {
	// PacketsIn counts packets handed to WriteRTP.
	PacketsIn uint64
	// QueueDrops counts packets and sender reports dropped because the
	// writer's queue was full.
	QueueDrops uint64
	// Malformed counts packets the depacketizer refused.
	Malformed uint64
	// Late counts packets that came after their turn (or twice).
	Late uint64
	// Lost counts sequence numbers given up on after MaxReorder.
	Lost uint64
	// NACKs counts sequence numbers asked for again.
	NACKs uint64
	// KeyframeRequests counts keyframes asked for.
	KeyframeRequests uint64
	// FramesWritten and FramesDropped count frames; a dropped one was
	// incomplete or depended on a lost one.
	FramesWritten, FramesDropped uint64
	// BytesWritten counts bytes written to files.
	BytesWritten uint64
}

// stats are the live counters: written by WriteRTP's callers, the writer
// and the container's goroutine, read by Stats and Metrics.
type stats struct {
	packetsIn, queueDrops, malformed, late, lost atomic.Uint64
	nacks, keyframeRequests                      atomic.Uint64
	framesWritten, framesDropped, bytesWritten   atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		PacketsIn:        s.packetsIn.Load(),
		QueueDrops:       s.queueDrops.Load(),
		Malformed:        s.malformed.Load(),
		Late:             s.late.Load(),
		Lost:             s.lost.Load(),
		NACKs:            s.nacks.Load(),
		KeyframeRequests: s.keyframeRequests.Load(),
		FramesWritten:    s.framesWritten.Load(),
		FramesDropped:    s.framesDropped.Load(),
		BytesWritten:     s.bytesWritten.Load(),
	}
}

func (s *Stats) add(o Stats) {
	s.PacketsIn += o.PacketsIn
	s.QueueDrops += o.QueueDrops
	s.Malformed += o.Malformed
	s.Late += o.Late
	s.Lost += o.Lost
	s.NACKs += o.NACKs
	s.KeyframeRequests += o.KeyframeRequests
	s.FramesWritten += o.FramesWritten
	s.FramesDropped += o.FramesDropped
	s.BytesWritten += o.BytesWritten
}
