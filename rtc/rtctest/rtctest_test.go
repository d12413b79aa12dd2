package rtctest

import (
	"slices"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// capture is a pion binding that keeps what a track writes.
type capture struct {
	codec webrtc.RTPCodecParameters
	pkts  []rtp.Packet
}

func (c *capture) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{c.codec}
}
func (c *capture) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (c *capture) SSRC() webrtc.SSRC                                      { return 1234 }
func (c *capture) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (c *capture) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (c *capture) WriteStream() webrtc.TrackLocalWriter                   { return c }
func (c *capture) ID() string                                             { return "capture" }
func (c *capture) RTCPReader() interceptor.RTCPReader                     { return nil }
func (c *capture) Write(b []byte) (int, error)                            { return len(b), nil }
func (c *capture) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	c.pkts = append(c.pkts, rtp.Packet{Header: *h, Payload: append([]byte(nil), payload...)})
	return len(payload), nil
}

func boundSender(t *testing.T, codec webrtc.RTPCodecCapability, s *Sender) (*Sender, *capture) {
	t.Helper()
	tr, err := webrtc.NewTrackLocalStaticRTP(codec, "t", "s")
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{codec: webrtc.RTPCodecParameters{RTPCodecCapability: codec, PayloadType: 96}}
	if _, err := tr.Bind(c); err != nil {
		t.Fatal(err)
	}
	s.Track = tr
	return s, c
}

// Video frames are cut into packets as a packetizer does: one timestamp a
// frame, the partition start on the first packet, the marker on the last,
// a keyframe at the start and on request.
func TestSenderFrames(t *testing.T) {
	s, c := boundSender(t, VP8, &Sender{PayloadSize: 100, PacketsPerFrame: 3, TimestampStep: 3000, KeyframeEvery: 100})
	for range 2 {
		if err := s.WriteFrame(); err != nil {
			t.Fatal(err)
		}
	}
	s.RequestKeyframe()
	if err := s.WriteFrame(); err != nil {
		t.Fatal(err)
	}
	if len(c.pkts) != 9 || s.Sent() != 9 {
		t.Fatalf("wrote %d packets (Sent %d), want 9", len(c.pkts), s.Sent())
	}
	for i, p := range c.pkts {
		first, last, frame := i%3 == 0, i%3 == 2, uint32(i/3)
		if p.SequenceNumber != uint16(i) || p.Timestamp != frame*3000 || p.Marker != last {
			t.Errorf("packet %d: seq %d ts %d marker %v", i, p.SequenceNumber, p.Timestamp, p.Marker)
		}
		if start := p.Payload[0]&0x10 != 0; start != first {
			t.Errorf("packet %d: partition start %v", i, start)
		}
		key := first && p.Payload[1]&0x01 == 0
		if wantKey := first && frame != 1; key != wantKey {
			t.Errorf("packet %d (frame %d): keyframe %v, want %v", i, frame, key, wantKey)
		}
		counter, sent, ok := readBody(p.Payload[vp8Descriptor:])
		if !ok || counter != uint32(i) || time.Since(sent) > time.Minute || len(p.Payload) != 100 {
			t.Errorf("packet %d: body counter %d ok %v, %d bytes", i, counter, ok, len(p.Payload))
		}
	}
}

// Audio packets are each a frame, with no payload descriptor.
func TestSenderAudio(t *testing.T) {
	s, c := boundSender(t, Opus, &Sender{PayloadSize: 40, TimestampStep: 960})
	for range 3 {
		if err := s.WriteNext(); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range c.pkts {
		counter, _, ok := readBody(p.Payload)
		if !ok || counter != uint32(i) || p.Timestamp != uint32(i)*960 || !p.Marker {
			t.Errorf("packet %d: counter %d ok %v ts %d marker %v", i, counter, ok, p.Timestamp, p.Marker)
		}
	}
	small := &Sender{Track: s.Track, PayloadSize: 8}
	if err := small.WriteNext(); err == nil {
		t.Error("a payload too small for the body was accepted")
	}
}

func TestVideoSSRCs(t *testing.T) {
	const offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=ssrc:11 cname:x\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=ssrc:22 cname:x\r\na=ssrc:23 cname:x\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=ssrc:33 cname:x\r\n" +
		"m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\na=ssrc:bogus cname:x\r\na=ssrc:44\r\n"
	for _, tc := range []struct {
		name string
		sdp  string
		want []uint32
	}{
		{"video that is sent, not audio nor recvonly", offer, []uint32{22, 23, 44}},
		{"not SDP", "hello", nil},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := VideoSSRCs(tc.sdp); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// A sender whose connection did not negotiate the audio level (id 0)
// writes packets without it rather than failing.
func TestSetAudioLevelWithoutID(t *testing.T) {
	tr, err := webrtc.NewTrackLocalStaticRTP(Opus, "a", "s")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sender{Track: tr, PayloadSize: 40, TimestampStep: 960}
	s.SetAudioLevel(0, 30, true)
	if err := s.WriteNext(); err != nil {
		t.Fatalf("write without an audio level id: %v", err)
	}
	if s.pkt.Extension {
		t.Fatalf("extension written: %v", s.pkt.Extensions)
	}
	s.SetAudioLevel(3, 30, true)
	if err := s.WriteNext(); err != nil {
		t.Fatal(err)
	}
	if got := s.pkt.GetExtension(3); len(got) != 1 || got[0] != 0x80|30 {
		t.Fatalf("audio level element %x", got)
	}
}
