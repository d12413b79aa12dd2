package rtc

import "sync/atomic"

// DropReason says why a packet was not forwarded.
type DropReason int

// Drop reasons. Each has its own counter per track and its own metric label.
const (
	// DropQueueFull: the queue of the fan-out writer that serves the
	// subscriber was full (the writer fell behind); the newest packet is
	// dropped for every subscriber of that writer's group.
	DropQueueFull DropReason = iota
	// DropWaitKeyframe: a video down-track that joined or changed source
	// waits for a keyframe before forwarding.
	DropWaitKeyframe
	// DropUnbound: the down-track is not (or no longer) attached to a
	// subscriber's sender.
	DropUnbound
	// DropWriteError: writing to the subscriber's connection failed.
	DropWriteError
	// DropStaleSource: a packet from the down-track's previous source,
	// still queued when the source changed.
	DropStaleSource
	// DropMalformed: a received packet that is not valid RTP.
	DropMalformed
	// DropPayloadType: a received packet with another payload type than
	// the track's negotiated codec.
	DropPayloadType
	// DropMuted: the track is muted (by its publisher or by the server);
	// its packets are read and cached but not forwarded.
	DropMuted
	// DropNotReady: the subscriber's connection had not finished its DTLS
	// handshake, so it could not take SRTP yet.
	DropNotReady
	// DropSwitchPending: a packet of the layer a down-track moves to,
	// before that layer's keyframe; the down-track goes on with its old
	// layer meanwhile.
	DropSwitchPending
	// DropBandwidth: the subscriber's bandwidth estimate does not pay for
	// the track's lowest layer; the track is paused for it.
	DropBandwidth
	// DropPaused: the subscriber paused the track (DownTrack.SetPaused).
	DropPaused
	// DropTemporalLayer: a VP8 frame of a temporal layer above what the
	// down-track's frame rate cap allows (temporal.go).
	DropTemporalLayer
	// DropPadding: a publisher's padding-only packet on a video track
	// (padding.go): the stream goes on without it.
	DropPadding

	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"queue_full", "wait_keyframe", "unbound", "write_error", "stale_source", "malformed", "payload_type", "muted",
	"not_ready", "switch_pending", "bandwidth", "paused", "temporal_layer",
	"padding",
}

func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropReasonNames[r]
}

// counters are a track's statistics, updated with atomics on the packet
// path and read at scrape time.
type counters struct {
	packets, bytes   atomic.Uint64
	drops            [numDropReasons]atomic.Uint64
	nacks            atomic.Uint64 // sequence numbers NACKed by the subscriber
	retransmits      atomic.Uint64 // NACKed packets resent from the cache
	nackMisses       atomic.Uint64 // NACKed packets no longer in the cache
	nackSuppressed   atomic.Uint64 // NACKed packets not resent again (resendLimit)
	plis, firs       atomic.Uint64 // keyframe requests received from the subscriber
	keyframeRequests atomic.Uint64 // PLIs sent to the publisher
	catchUps         atomic.Uint64 // streams started from a cached keyframe
	layerSwitches    atomic.Uint64 // moves to another layer of a Track
	// Of those, the moves to a larger or a smaller picture (neither when
	// a size is not known).
	layerSwitchesUp, layerSwitchesDown atomic.Uint64
}

// Stats is a snapshot of one track's counters. A Forwarder counts packets
// and bytes received; a DownTrack counts packets and bytes sent (without
// retransmissions).
type Stats struct {
	Packets, Bytes uint64
	// Drops is indexed by DropReason.
	Drops       [numDropReasons]uint64
	NACKs       uint64
	Retransmits uint64
	NACKMisses  uint64
	// NACKSuppressed counts the NACKed packets not resent because they
	// had been resent as often, or as lately, as resendLimit allows.
	NACKSuppressed   uint64
	PLIs, FIRs       uint64
	KeyframeRequests uint64
	// CatchUps counts the times a down-track started from its source's
	// cached keyframe instead of waiting for a new one.
	CatchUps uint64
	// LayerSwitches counts a down-track's moves from one layer of its
	// Track to another; LayerSwitchesUp and LayerSwitchesDown those to a
	// larger and a smaller picture (neither when a size is not known).
	LayerSwitches, LayerSwitchesUp, LayerSwitchesDown uint64
}

// Dropped returns the number of packets dropped for reason r.
func (s Stats) Dropped(r DropReason) uint64 {
	if r < 0 || r >= numDropReasons {
		return 0
	}
	return s.Drops[r]
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Packets:           c.packets.Load(),
		Bytes:             c.bytes.Load(),
		NACKs:             c.nacks.Load(),
		Retransmits:       c.retransmits.Load(),
		NACKMisses:        c.nackMisses.Load(),
		NACKSuppressed:    c.nackSuppressed.Load(),
		PLIs:              c.plis.Load(),
		FIRs:              c.firs.Load(),
		KeyframeRequests:  c.keyframeRequests.Load(),
		CatchUps:          c.catchUps.Load(),
		LayerSwitches:     c.layerSwitches.Load(),
		LayerSwitchesUp:   c.layerSwitchesUp.Load(),
		LayerSwitchesDown: c.layerSwitchesDown.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}

func (s *Stats) add(o Stats) {
	s.Packets += o.Packets
	s.Bytes += o.Bytes
	for i := range s.Drops {
		s.Drops[i] += o.Drops[i]
	}
	s.NACKs += o.NACKs
	s.Retransmits += o.Retransmits
	s.NACKMisses += o.NACKMisses
	s.NACKSuppressed += o.NACKSuppressed
	s.PLIs += o.PLIs
	s.FIRs += o.FIRs
	s.KeyframeRequests += o.KeyframeRequests
	s.CatchUps += o.CatchUps
	s.LayerSwitches += o.LayerSwitches
	s.LayerSwitchesUp += o.LayerSwitchesUp
	s.LayerSwitchesDown += o.LayerSwitchesDown
}
