package rtctest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/h264"
)

// SimulcastRIDs and SimulcastSizes are a browser's three layers, lowest
// first, as a SimulcastSender sends them.
var (
	SimulcastRIDs  = []string{"q", "h", "f"}
	SimulcastSizes = [][2]int{{320, 180}, {640, 360}, {1280, 720}}
)

// SimulcastSender sends one synthetic camera in the three rid layers of
// SimulcastRIDs, in VP8, VP9 or H.264. A VP8 frame is two packets with a
// 15-bit picture id, a keyframe having the layer's size in its header; a
// VP9 frame likewise (writeVP9Frame). An
// H.264 frame is what pion's packetizer makes of an encoder's access
// unit: a keyframe is a STAP-A of the SPS (with the layer's size) and PPS
// then an IDR slice, a delta frame a non-IDR slice; slices larger than a
// packet go in FU-A fragments. Higher layers send more bytes, and every
// packet of layer i but an H.264 STAP-A ends in the byte '0'+i
// (SimulcastLayer). Like a browser it names each packet's mid and rid in
// header extensions, which pion leaves to its user. A PLI to a layer's
// SSRC makes that layer's next frame a keyframe.
type SimulcastSender struct {
	// Unnamed: the packets name neither their mid nor their rid, as
	// those of a publisher of simulcast by SSRC (a=ssrc-group:SIM). Set
	// it before Negotiated.
	Unnamed bool

	tracks       []*webrtc.TrackLocalStaticRTP
	sender       *webrtc.RTPSender
	wantKey      [3]atomic.Bool
	plis         [3]atomic.Int32
	midID, ridID uint8
	mid          string
	vp9          bool // the camera sends VP9 (AddSimulcastVP9)

	// Only Run's goroutine uses the following.
	h264 [3]*codecs.H264Payloader // nil for VP8 and VP9
	seq  [3]uint16
}

// AddSimulcast adds a VP8 camera of stream streamID to pc, in three
// layers. The API that made pc must register the simulcast header
// extensions, as ClientAPI does.
func AddSimulcast(pc *webrtc.PeerConnection, streamID string) (*SimulcastSender, error) {
	return addSimulcast(pc, streamID, VP8)
}

// AddSimulcastH264 is AddSimulcast for an H.264 camera (H264).
func AddSimulcastH264(pc *webrtc.PeerConnection, streamID string) (*SimulcastSender, error) {
	return addSimulcast(pc, streamID, H264)
}

func addSimulcast(pc *webrtc.PeerConnection, streamID string, codec webrtc.RTPCodecCapability) (*SimulcastSender, error) {
	s := &SimulcastSender{}
	for i, rid := range SimulcastRIDs {
		// Each layer numbers its packets on its own.
		s.seq[i] = uint16(i * 20000)
		if codec.MimeType == webrtc.MimeTypeH264 {
			s.h264[i] = &codecs.H264Payloader{}
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "camera", streamID, webrtc.WithRTPStreamID(rid))
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
	if s.Unnamed {
		s.midID, s.ridID = 0, 0
	}
	if (!s.Unnamed && (s.midID == 0 || s.ridID == 0)) || s.mid == "" {
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

// Start reads the negotiated ids (Negotiated), then serves each layer's
// keyframe requests and sends a frame every interval until ctx ends
// (Run), on goroutines wg counts; fail is told if sending fails. The
// request readers stop with pc.
func (s *SimulcastSender) Start(ctx context.Context, pc *webrtc.PeerConnection, interval time.Duration, wg *sync.WaitGroup, fail func(error)) error {
	if err := s.Negotiated(pc); err != nil {
		return err
	}
	for i := range s.tracks {
		wg.Go(func() { s.ServeKeyframeRequests(i) })
	}
	wg.Go(func() {
		if err := s.Run(ctx, interval); err != nil {
			fail(err)
		}
	})
	return nil
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
	if s.h264[i] != nil {
		return s.writeH264Frame(i, n, key)
	}
	if s.vp9 {
		return s.writeVP9Frame(i, n, key)
	}
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
		if err := s.writePacket(i, n, part == 1, payload); err != nil {
			return err
		}
	}
	return nil
}

// h264MTU is the payload size above which the H.264 packetizer fragments
// a slice: the high layer's slices take several packets, as they do from
// a browser.
const h264MTU = 1000

// writeH264Frame writes frame n of layer i in H.264.
func (s *SimulcastSender) writeH264Frame(i int, n uint32, key bool) error {
	// An access unit in Annex B: the parameter sets before an IDR slice,
	// and a slice whose header is followed by the layer's byte.
	var au []byte
	slice := []byte{0x41, 0x9a} // non-IDR, P slice
	size := 150 + 400*i
	if key {
		size = 400 + 1200*i
		for _, nal := range [][]byte{h264SPS(SimulcastSizes[i][0], SimulcastSizes[i][1]), h264PPS} {
			au = append(append(au, 0, 0, 0, 1), nal...)
		}
		slice = []byte{0x65, 0x88} // IDR, I slice
	}
	au = append(append(au, 0, 0, 0, 1), slice...)
	au = append(au, bytes.Repeat([]byte{byte('0' + i)}, size)...)
	payloads := s.h264[i].Payload(h264MTU, au)
	for k, payload := range payloads {
		if err := s.writePacket(i, n, k == len(payloads)-1, payload); err != nil {
			return err
		}
	}
	return nil
}

// writePacket writes a packet of frame n of layer i.
func (s *SimulcastSender) writePacket(i int, n uint32, marker bool, payload []byte) error {
	pkt := &rtp.Packet{
		Header: rtp.Header{
			Version: 2, Marker: marker,
			// Each layer numbers and stamps its packets on its own.
			SequenceNumber: s.seq[i],
			Timestamp:      n*3000 + uint32(i)*0x30000000,
		},
		Payload: payload,
	}
	s.seq[i]++
	if s.Unnamed {
		return s.tracks[i].WriteRTP(pkt)
	}
	if err := pkt.Header.SetExtension(s.midID, []byte(s.mid)); err != nil {
		return err
	}
	if err := pkt.Header.SetExtension(s.ridID, []byte(SimulcastRIDs[i])); err != nil {
		return err
	}
	return s.tracks[i].WriteRTP(pkt)
}

// SimulcastLayer is the layer a SimulcastSender's payload came from, -1
// if it tells none: the last byte names it, or, in an H.264 STAP-A (the
// parameter sets), the picture size its SPS gives.
func SimulcastLayer(payload []byte) int {
	if len(payload) == 0 {
		return -1
	}
	if payload[0]&0x1f == 24 && len(payload) > 3 && payload[3]&0x1f == 7 {
		size := int(binary.BigEndian.Uint16(payload[1:]))
		if 3+size > len(payload) {
			return -1
		}
		w, h, ok := h264.SPSSize(payload[4 : 3+size])
		for i, s := range SimulcastSizes {
			if ok && s == [2]int{w, h} {
				return i
			}
		}
		return -1
	}
	return int(payload[len(payload)-1] - '0')
}

// SimulcastBySSRC turns desc, a description of a camera sent in rid
// layers (AddSimulcast), into one of the same layers told apart by SSRC
// alone, as libwebrtc described simulcast before rids: no a=rid or
// a=simulcast, the layers' SSRCs, lowest first, in an a=ssrc-group:SIM.
// Unless withExtmaps, it also leaves out the mid and rid header
// extensions, as a client that never names its layers may. The client
// keeps desc as its local description; its camera must then be Unnamed.
func SimulcastBySSRC(desc string, ssrcs []webrtc.SSRC, withExtmaps bool) (string, error) {
	var out []string
	grouped := false
	for _, line := range strings.Split(desc, "\r\n") {
		if strings.HasPrefix(line, "a=rid:") || strings.HasPrefix(line, "a=simulcast:") {
			continue
		}
		if !withExtmaps && strings.HasPrefix(line, "a=extmap:") &&
			(strings.Contains(line, sdp.SDESMidURI) || strings.Contains(line, "rtp-stream-id")) {
			continue
		}
		if !grouped && strings.HasPrefix(line, "a=ssrc") {
			group := "a=ssrc-group:SIM"
			for _, s := range ssrcs {
				group += fmt.Sprintf(" %d", s)
			}
			out = append(out, group)
			grouped = true
		}
		out = append(out, line)
	}
	if !grouped {
		return "", errors.New("rtctest: the description declares no SSRCs")
	}
	return strings.Join(out, "\r\n"), nil
}
