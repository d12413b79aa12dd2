package rtc

import (
	"slices"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// offerWith is an offer of one client section (mid 0, H.264 at payload
// type 96, as GStreamer numbers it) and one server section (mid s1)
// listing what pion would: the codecs negotiated so far.
const offerWith = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 s1\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n" +
	"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:96 nack\r\na=recvonly\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:s1\r\n" +
	"a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\na=rtcp-fb:96 nack\r\na=sendonly\r\n"

func section(t *testing.T, offer, mid string) *sdp.MediaDescription {
	t.Helper()
	md := findSection(t, offer, func(md *sdp.MediaDescription) bool {
		m, _ := md.Attribute(sdp.AttrKeyMID)
		return m == mid
	})
	if md == nil {
		t.Fatalf("no section %s", mid)
	}
	return md
}

// findSection returns the first media section of desc that match takes,
// or nil.
func findSection(t *testing.T, desc string, match func(*sdp.MediaDescription) bool) *sdp.MediaDescription {
	t.Helper()
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		t.Fatal(err)
	}
	for _, md := range d.MediaDescriptions {
		if match(md) {
			return md
		}
	}
	return nil
}

func TestOfferSendCodecs(t *testing.T) {
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	h264 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}

	// VP8 is not negotiated, and the engine's type for it (96) is H.264's
	// here: it gets the first free dynamic type, and comes first.
	out, err := OfferSendCodecs(offerWith, map[string]webrtc.RTPCodecCapability{"s1": vp8})
	if err != nil {
		t.Fatal(err)
	}
	s1 := section(t, out, "s1")
	codecs := sectionCodecs(s1)
	if len(codecs) == 0 || codecs[0].codec.MimeType != "video/VP8" || codecs[0].pt != 97 || s1.MediaName.Formats[0] != "97" {
		t.Fatalf("s1 offers %+v, want VP8 first at 97", codecs)
	}
	// Then what was negotiated, and the engine's other video codecs, each
	// with a payload type of its own.
	pts := map[uint8]bool{}
	for _, c := range codecs {
		if pts[c.pt] {
			t.Fatalf("payload type %d twice in %+v", c.pt, codecs)
		}
		pts[c.pt] = true
	}
	if codecs[1].pt != 96 || codecs[1].codec.MimeType != "video/H264" {
		t.Fatalf("the negotiated H.264 is not kept second: %+v", codecs)
	}
	for _, r := range serverCodecs() {
		if strings.HasPrefix(r.MimeType, "video/") && !slices.ContainsFunc(codecs, func(c sectionCodec) bool { return CodecFits(r.RTPCodecCapability, c.codec) }) {
			t.Errorf("s1 lacks %s %s", r.MimeType, r.SDPFmtpLine)
		}
	}
	if len(s1.MediaName.Formats) != len(codecs) {
		t.Fatalf("formats %v for %d codecs", s1.MediaName.Formats, len(codecs))
	}
	// A client's answer that takes VP8 alone in s1.
	answer := section(t, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"+
		"m=video 9 UDP/TLS/RTP/SAVPF 97\r\nc=IN IP4 0.0.0.0\r\na=mid:s1\r\na=rtpmap:97 VP8/90000\r\na=recvonly\r\n", "s1")
	if !SectionAccepts(answer, vp8) || SectionAccepts(answer, h264) {
		t.Fatal("SectionAccepts disagrees with the section")
	}
	answer.MediaName.Port.Value = 0
	if SectionAccepts(answer, vp8) {
		t.Fatal("a rejected section accepts")
	}
	// The client's own section is left alone.
	if c := sectionCodecs(section(t, out, "0")); len(c) != 1 || c[0].pt != 96 {
		t.Fatalf("the client's section changed: %+v", c)
	}

	// A codec the connection uses keeps its type and lines, and comes first.
	out, err = OfferSendCodecs(offerWith, map[string]webrtc.RTPCodecCapability{"s1": h264})
	if err != nil {
		t.Fatal(err)
	}
	if c := sectionCodecs(section(t, out, "s1")); c[0].pt != 96 || len(c[0].attrs) != 3 {
		t.Fatalf("s1 offers %+v, want H.264 at 96 first with its rtpmap, fmtp and rtcp-fb", c)
	}
}

func TestCodecFits(t *testing.T) {
	h := func(fmtp string) webrtc.RTPCodecCapability {
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: fmtp}
	}
	tests := []struct {
		have, want webrtc.RTPCodecCapability
		fits       bool
	}{
		{h("packetization-mode=1;profile-level-id=42e01f"), h("profile-level-id=42e034;packetization-mode=1"), true},
		{h("packetization-mode=1;profile-level-id=42e01f"), h("packetization-mode=0;profile-level-id=42e01f"), false},
		{h("packetization-mode=1;profile-level-id=4d001f"), h("packetization-mode=1;profile-level-id=42e01f"), false},
		// One profile written several ways: Constrained Baseline as
		// GStreamer's encoders and browsers write it, and as Main with
		// constraint_set0; Main with constraint_set1; case.
		{h("packetization-mode=1;profile-level-id=42c015"), h("packetization-mode=1;profile-level-id=42e01f"), true},
		{h("packetization-mode=1;profile-level-id=4d801f"), h("packetization-mode=1;profile-level-id=42e01f"), true},
		{h("packetization-mode=1;profile-level-id=4d401f"), h("packetization-mode=1;profile-level-id=4d001f"), true},
		{h("packetization-mode=1;profile-level-id=42E01F"), h("packetization-mode=1;profile-level-id=42e01f"), true},
		// Baseline is not Constrained Baseline, Constrained High not High.
		{h("packetization-mode=1;profile-level-id=42001f"), h("packetization-mode=1;profile-level-id=42e01f"), false},
		{h("packetization-mode=1;profile-level-id=42801f"), h("packetization-mode=1;profile-level-id=42c01f"), false},
		{h("packetization-mode=1;profile-level-id=640c1f"), h("packetization-mode=1;profile-level-id=64001f"), false},
		// Unknown profiles compare as written.
		{h("packetization-mode=1;profile-level-id=53001f"), h("packetization-mode=1;profile-level-id=53001f"), true},
		{h("packetization-mode=1;profile-level-id=zz"), h("packetization-mode=1;profile-level-id=42e01f"), false},
		{webrtc.RTPCodecCapability{MimeType: "video/vp8", ClockRate: 90000}, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, true},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=2"}, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000}, false},
		{webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, h(""), false},
	}
	for _, tt := range tests {
		if got := CodecFits(tt.have, tt.want); got != tt.fits {
			t.Errorf("CodecFits(%v, %v) = %v", tt.have, tt.want, got)
		}
	}
}
