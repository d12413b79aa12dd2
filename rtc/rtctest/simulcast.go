package rtctest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// SimulcastRIDs and SimulcastSizes are a browser's three layers, lowest
// first, as a SimulcastSender sends them.
var (
	SimulcastRIDs  = []string{"q", "h", "f"}
	SimulcastSizes = [][2]int{{320, 180}, {640, 360}, {1280, 720}}
)

// SimulcastSender sends one synthetic VP8 camera in the three rid layers
// of SimulcastRIDs: each frame in two packets with a 15-bit picture id,
// keyframes with the layer's size in their header, and the layer's number
// as the last payload byte (SimulcastLayer). Higher layers send more
// bytes. Like a browser it names each packet's mid and rid in header
// extensions, which pion leaves to its user. A PLI to a layer's SSRC
// makes that layer's next frame a keyframe.
type SimulcastSender struct {
	tracks       []*webrtc.TrackLocalStaticRTP
	sender       *webrtc.RTPSender
	wantKey      [3]atomic.Bool
	plis         [3]atomic.Int32
	midID, ridID uint8
	mid          string
}

// AddSimulcast adds a camera of stream streamID to pc, in three layers.
// The API that made pc must register the simulcast header extensions, as
// ClientAPI does.
func AddSimulcast(pc *webrtc.PeerConnection, streamID string) (*SimulcastSender, error) {
	s := &SimulcastSender{}
	for _, rid := range SimulcastRIDs {
		tr, err := webrtc.NewTrackLocalStaticRTP(VP8, "camera", streamID, webrtc.WithRTPStreamID(rid))
		if err != nil {
			return nil, err
		}
		s.tracks = append(s.tracks, tr)
	}
	var err error
	if s.sender, err = pc.AddTrack(s.tracks[0]); err != nil {
		return nil, err
	}
	for _, tr := range s.tracks[1:] {
		if err := s.sender.AddEncoding(tr); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Negotiated reads the header extension ids and the mid that pc agreed
// on; call it once pc has the remote description.
func (s *SimulcastSender) Negotiated(pc *webrtc.PeerConnection) error {
	for _, x := range s.sender.GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			s.midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			s.ridID = uint8(x.ID)
		}
	}
	for _, tr := range pc.GetTransceivers() {
		if tr.Sender() == s.sender {
			s.mid = tr.Mid()
		}
	}
	if s.midID == 0 || s.ridID == 0 || s.mid == "" {
		return fmt.Errorf("rtctest: mid and rid not negotiated (ids %d, %d, mid %q)", s.midID, s.ridID, s.mid)
	}
	return nil
}

// ServeKeyframeRequests reads layer i's RTCP until the sender stops.
func (s *SimulcastSender) ServeKeyframeRequests(i int) {
	for {
		pkts, _, err := s.sender.ReadSimulcastRTCP(SimulcastRIDs[i])
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if _, ok := pkt.(*rtcp.PictureLossIndication); ok {
				s.plis[i].Add(1)
				s.wantKey[i].Store(true)
			}
		}
	}
}

// SSRCs are the layers' SSRCs, lowest layer first.
func (s *SimulcastSender) SSRCs() []webrtc.SSRC {
	var out []webrtc.SSRC
	for _, e := range s.sender.GetParameters().Encodings {
		out = append(out, e.SSRC)
	}
	return out
}

// PLIs is how many PLIs layer i's SSRC was sent.
func (s *SimulcastSender) PLIs(i int) int32 { return s.plis[i].Load() }

// Run sends a frame on every layer each interval until ctx ends; every
// 100th frame is a keyframe, besides those asked for.
func (s *SimulcastSender) Run(ctx context.Context, interval time.Duration) error {
	if s.mid == "" {
		return errors.New("rtctest: Run before Negotiated")
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for n := uint32(0); ; n++ {
		for i := range s.tracks {
			key := n%100 == 0 || s.wantKey[i].Swap(false)
			if err := s.writeFrame(i, n, key); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// writeFrame writes frame n of layer i.
func (s *SimulcastSender) writeFrame(i int, n uint32, key bool) error {
	for part := uint32(0); part < 2; part++ {
		payload := []byte{0x80, 0x80}
		payload = binary.BigEndian.AppendUint16(payload, 0x8000|uint16(n+uint32(i)*1000)&0x7fff)
		if part == 0 {
			payload[0] |= 0x10
			if key {
				payload = append(payload, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a)
				payload = binary.LittleEndian.AppendUint16(payload, uint16(SimulcastSizes[i][0]))
				payload = binary.LittleEndian.AppendUint16(payload, uint16(SimulcastSizes[i][1]))
			} else {
				payload = append(payload, 0x01)
			}
		}
		payload = append(payload, make([]byte, 100+300*i)...)
		payload = append(payload, byte('0'+i))
		pkt := &rtp.Packet{
			Header: rtp.Header{
				Version: 2, Marker: part == 1,
				// Each layer numbers and stamps its packets on its own.
				SequenceNumber: uint16(2*n + part + uint32(i)*20000),
				Timestamp:      n*3000 + uint32(i)*0x30000000,
			},
			Payload: payload,
		}
		if err := pkt.Header.SetExtension(s.midID, []byte(s.mid)); err != nil {
			return err
		}
		if err := pkt.Header.SetExtension(s.ridID, []byte(SimulcastRIDs[i])); err != nil {
			return err
		}
		if err := s.tracks[i].WriteRTP(pkt); err != nil {
			return err
		}
	}
	return nil
}

// SimulcastLayer is the layer a SimulcastSender's payload came from.
func SimulcastLayer(payload []byte) int {
	if len(payload) == 0 {
		return -1
	}
	return int(payload[len(payload)-1] - '0')
}
