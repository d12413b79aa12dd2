package rtc

import (
	"encoding/binary"
	"fmt"
)

// This file reads the RTCP a publisher sends with a track: its sender
// reports map the track's RTP time to the publisher's NTP clock, which all
// of one publisher's tracks share. A recording places each track's frames
// on that clock, so that a participant's audio and video stay in sync
// whatever their RTP offsets or their delay on the path.

// RTCPSource reads one compound RTCP packet the publisher sent about a
// received stream (through the peer connection's interceptors, which read
// its reports too). It returns an error once the stream has ended.
type RTCPSource func(b []byte) (int, error)

// ReadRTCP returns the source of the RTCP the client sends about the
// event's track: the receiver's, or its simulcast layer's.
func (e TrackEvent) ReadRTCP() RTCPSource {
	r, rid := e.Receiver, e.Track.RID()
	if rid != "" {
		return func(b []byte) (int, error) {
			n, _, err := r.ReadSimulcast(b, rid)
			return n, err
		}
	}
	return func(b []byte) (int, error) {
		n, _, err := r.Read(b)
		return n, err
	}
}

// SenderReport is the latest mapping of a track's RTP time to its
// publisher's wall clock.
type SenderReport struct {
	// SSRC is the stream's.
	SSRC uint32
	// NTP is the report's NTP timestamp (seconds since 1900, 32.32 fixed
	// point) of RTP time RTPTime.
	NTP     uint64
	RTPTime uint32
}

// SenderReportSink is a Sink that also takes the sender reports of the
// stream it receives (a recording). WriteSenderReport is called from the
// forwarder's RTCP loop, and once from SetSink with the last report, so it
// may be called from two goroutines; it must not block.
type SenderReportSink interface {
	Sink
	WriteSenderReport(sr SenderReport)
}

// senderReportOf returns the sender report about ssrc in a compound RTCP
// packet, if there is one. It allocates nothing and stops at the first
// malformed packet.
func senderReportOf(b []byte, ssrc uint32) (SenderReport, bool) {
	for {
		pkt, rest, ok := nextRTCP(b)
		if !ok {
			return SenderReport{}, false
		}
		b = rest
		// Sender SSRC, NTP timestamp, RTP timestamp, then the counts.
		if pkt[1] != rtcpSR || len(pkt) < rtcpSRHeaderSize || binary.BigEndian.Uint32(pkt[4:]) != ssrc {
			continue
		}
		return SenderReport{SSRC: ssrc, NTP: binary.BigEndian.Uint64(pkt[8:]), RTPTime: binary.BigEndian.Uint32(pkt[16:])}, true
	}
}

// LastSenderReport returns the latest sender report of the forwarder's
// stream, if one has come.
func (f *Forwarder) LastSenderReport() (SenderReport, bool) {
	if sr := f.lastSR.Load(); sr != nil {
		return *sr, true
	}
	return SenderReport{}, false
}

// giveSenderReport hands a sink that takes them the last report, so that
// a sink set between two reports need not wait for the next.
func (f *Forwarder) giveSenderReport(s Sink) {
	if rs, ok := s.(SenderReportSink); ok {
		if sr, ok := f.LastSenderReport(); ok {
			rs.WriteSenderReport(sr)
		}
	}
}

// rtcpLoop reads the publisher's RTCP about the stream until the stream
// ends (its receiver stops with the track or the peer connection), keeps
// the last sender report and hands it to the sink. A panic ends the loop
// and is reported as the read loop's are.
func (f *Forwarder) rtcpLoop(read RTCPSource) {
	defer close(f.rtcpDone)
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("%w: rtcp loop: %v", ErrReadLoopPanic, r)
			f.log.Error("rtcp loop panic", "err", err)
			if f.onFailure != nil {
				f.onFailure(err)
			}
		}
	}()
	b := make([]byte, maxPacketSize)
	errs := 0
	for {
		n, err := read(b)
		if err != nil {
			if isEOF(err) {
				return
			}
			// A packet the interceptors could not read: read on, unless
			// the stream gives nothing but errors.
			if errs++; errs >= maxReadErrors {
				f.log.Warn("rtcp loop ends after repeated errors", "err", err)
				return
			}
			continue
		}
		errs = 0
		sr, ok := senderReportOf(b[:n], f.ssrc)
		if !ok {
			continue
		}
		f.lastSR.Store(&sr)
		if s := f.sink.Load(); s != nil {
			if rs, ok := (*s).(SenderReportSink); ok {
				rs.WriteSenderReport(sr)
			}
		}
	}
}

// RTCPDone is closed when the RTCP loop has ended (its stream ended), or
// at once for a forwarder that reads no RTCP. Close does not wait for it:
// the loop ends when the publisher's receiver stops.
func (f *Forwarder) RTCPDone() <-chan struct{} { return f.rtcpDone }
