package bwe

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtcp"
)

// ErrMalformedFeedback: a transport-cc feedback whose status chunks and
// arrival deltas do not agree. It changes nothing.
var ErrMalformedFeedback = errors.New("bwe: malformed transport-cc feedback")

// Ack is what a feedback report says of one packet sent.
type Ack struct {
	// Seq is the packet's transport-wide sequence number.
	Seq uint16
	// Received: the packet arrived, at Arrival on the receiver's clock
	// (the report's reference time and the deltas up to the packet; the
	// reference time wraps every 2^24 × 64 ms).
	Received bool
	Arrival  time.Duration
}

// referenceUnit is the unit of a report's reference time.
const referenceUnit = 64 * time.Millisecond

// ParseFeedback appends to dst what fb says of each packet it reports, in
// sequence order, and returns it. A report whose chunks describe fewer
// packets than it counts, or whose deltas do not match its received
// packets, is refused whole (ErrMalformedFeedback, dst as it was).
func ParseFeedback(fb *rtcp.TransportLayerCC, dst []Ack) ([]Ack, error) {
	start := len(dst)
	at := time.Duration(fb.ReferenceTime) * referenceUnit
	seq := fb.BaseSequenceNumber
	left := int(fb.PacketStatusCount)
	deltas := fb.RecvDeltas
	status := func(sym uint16) error {
		a := Ack{Seq: seq}
		switch sym {
		case rtcp.TypeTCCPacketReceivedSmallDelta, rtcp.TypeTCCPacketReceivedLargeDelta:
			if len(deltas) == 0 || deltas[0] == nil {
				return fmt.Errorf("%w: %d packets received, fewer deltas", ErrMalformedFeedback, len(fb.RecvDeltas)+1)
			}
			at += time.Duration(deltas[0].Delta) * time.Microsecond
			deltas = deltas[1:]
			a.Received, a.Arrival = true, at
		case rtcp.TypeTCCPacketNotReceived:
		default:
			// "Received without a delta" carries no time to use.
		}
		dst = append(dst, a)
		seq++
		left--
		return nil
	}
	for _, chunk := range fb.PacketChunks {
		if left == 0 {
			break
		}
		switch ch := chunk.(type) {
		case *rtcp.RunLengthChunk:
			for range min(int(ch.RunLength), left) {
				if err := status(ch.PacketStatusSymbol); err != nil {
					return dst[:start], err
				}
			}
		case *rtcp.StatusVectorChunk:
			for _, sym := range ch.SymbolList {
				if left == 0 {
					break
				}
				if err := status(sym); err != nil {
					return dst[:start], err
				}
			}
		}
	}
	if left > 0 || len(deltas) > 0 {
		return dst[:start], fmt.Errorf("%w: %d packets counted, %d described, %d deltas left over",
			ErrMalformedFeedback, fb.PacketStatusCount, int(fb.PacketStatusCount)-left, len(deltas))
	}
	return dst, nil
}
