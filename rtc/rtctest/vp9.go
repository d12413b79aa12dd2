package rtctest

import (
	"encoding/binary"

	"github.com/pion/webrtc/v4"
)

// VP9 is VP9 profile 0, as browsers send it.
var VP9 = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}

// AddSimulcastVP9 is AddSimulcast for a VP9 camera (VP9), sent as a
// browser sends VP9 simulcast: each layer a stream of its own, in
// non-flexible mode with one spatial and one temporal layer.
func AddSimulcastVP9(pc *webrtc.PeerConnection, streamID string) (*SimulcastSender, error) {
	s, err := addSimulcast(pc, streamID, VP9)
	if err != nil {
		return nil, err
	}
	s.vp9 = true
	return s, nil
}

// writeVP9Frame writes frame n of layer i in VP9: two packets whose
// payload descriptors (RFC 9628) carry a 15-bit picture id, the layer
// indices and TL0PICIDX, each layer numbering its pictures on its own
// (layer i's ids start 1000*i ahead), and on a keyframe's first packet a
// scalability structure with the layer's size.
func (s *SimulcastSender) writeVP9Frame(i int, n uint32, key bool) error {
	pic := uint16(n+uint32(i)*1000) & 0x7fff
	for part := range 2 {
		flags := byte(0xa0) // I, L
		if !key {
			flags |= 0x40 // P
		}
		if part == 0 {
			flags |= 0x08 // B
		} else {
			flags |= 0x04 // E
		}
		ss := key && part == 0
		if ss {
			flags |= 0x02 // V
		}
		// Temporal and spatial layer 0; TL0PICIDX counts the frames.
		payload := []byte{flags, 0x80 | byte(pic>>8), byte(pic), 0x00, byte(n + uint32(i)*50)}
		if ss {
			payload = append(payload, 0x10) // N_S = 0, Y: the size follows
			payload = binary.BigEndian.AppendUint16(payload, uint16(SimulcastSizes[i][0]))
			payload = binary.BigEndian.AppendUint16(payload, uint16(SimulcastSizes[i][1]))
		}
		payload = append(payload, make([]byte, 100+300*i)...)
		payload = append(payload, byte('0'+i))
		if err := s.writePacket(i, n, part == 1, payload); err != nil {
			return err
		}
	}
	return nil
}
