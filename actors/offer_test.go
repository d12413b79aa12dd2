package actors

import (
	"errors"
	"strings"
	"testing"
)

// What a WHIP or WHEP offer may ask, section by section. The refusals are
// ErrInvalidSDP and say why in words a client can act on, with nothing
// before them: the API sends the text as it is.
func TestValidateOffer(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	const audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
	const video = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\n"
	const data = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
	cases := []struct {
		name  string
		kind  ClientKind
		offer string
		want  string // "" accepted, else the refusal's text
	}{
		{"whip sendonly", ClientWHIP, head + audio + "a=sendonly\r\n", ""},
		{"whip sendrecv", ClientWHIP, head + audio + "a=sendrecv\r\n", ""},
		{"whip no direction", ClientWHIP, head + audio, ""},
		{"whip recvonly", ClientWHIP, head + audio + "a=recvonly\r\n", "a WHIP offer's audio section must send (sendonly), not recvonly"},
		{"whip inactive", ClientWHIP, head + audio + "a=inactive\r\n", "a WHIP offer's audio section must send (sendonly), not inactive"},
		{"whep recvonly", ClientWHEP, head + audio + "a=recvonly\r\n", ""},
		{"whep recvonly and data", ClientWHEP, head + audio + "a=recvonly\r\n" + data, ""},
		{"whep no direction", ClientWHEP, head + audio, "a WHEP offer's audio section must be recvonly, not sendrecv"},
		{"whep sendonly", ClientWHEP, head + audio + "a=sendonly\r\n", "a WHEP offer's audio section must be recvonly, not sendonly"},
		{"whep inactive", ClientWHEP, head + audio + "a=inactive\r\n", "a WHEP offer's audio section must be recvonly, not inactive"},
		{"whep one section sends", ClientWHEP, head + audio + "a=recvonly\r\n" + audio + "a=sendrecv\r\n", "a WHEP offer's audio section must be recvonly, not sendrecv"},
		{"data only", ClientWHIP, head + data, "the offer has no audio or video section"},
		{"sixteen sections", ClientWHIP, head + strings.Repeat(audio, maxOfferMedia), ""},
		{"seventeen sections", ClientWHIP, head + strings.Repeat(audio, maxOfferMedia+1), "the offer has more than 16 audio and video sections"},
		{"too large", ClientWHIP, head + audio + strings.Repeat("a=x\r\n", MaxSDPSize/5), "the offer exceeds 65536 bytes"},
		{"simulcast by SSRC", ClientWHIP, head + video + "a=sendonly\r\na=mid:0\r\na=ssrc-group:SIM 1 2 3\r\na=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\na=ssrc:3 cname:c\r\n", ""},
		{"simulcast by undeclared SSRC", ClientWHIP, head + video + "a=sendonly\r\na=mid:0\r\na=ssrc-group:SIM 1 2 3\r\na=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\n",
			`simulcast by SSRC: section "0": a=ssrc-group:SIM 1 2 3 names SSRC 3, which the section does not declare (a=ssrc)`},
		{"retransmission by SSRC", ClientWHIP, head + video + "a=sendonly\r\na=mid:0\r\na=ssrc-group:FID 1 2\r\na=ssrc:1 cname:c\r\na=ssrc:2 cname:c\r\n", ""},
	}
	for _, tc := range cases {
		err := ValidateOffer(tc.kind, tc.offer)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidSDP) || err.Error() != tc.want):
			t.Errorf("%s: got %v, want ErrInvalidSDP %q", tc.name, err, tc.want)
		}
	}
	if err := ValidateOffer(ClientWHIP, "not sdp"); !errors.Is(err, ErrInvalidSDP) || !strings.HasPrefix(err.Error(), "the offer is not valid SDP: ") {
		t.Errorf("garbage: %v", err)
	}
	// A WebSocket client's offers renegotiate freely: this rule is not
	// theirs, and asking it is a bug, not a client's error.
	if err := ValidateOffer(ClientSignaling, head+audio); err == nil || errors.Is(err, ErrInvalidSDP) {
		t.Errorf("signaling offer: %v", err)
	}
}

// A signaling client's offer sends on at most maxOfferMedia sections: the
// tracks it publishes. Sections that receive, or that are rejected, are
// the server's to bound, and are not counted.
func TestCheckSignalingOffer(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	const audio = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
	const rejected = "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n"
	send, recv := audio+"a=sendonly\r\n", audio+"a=recvonly\r\n"
	const refusal = "the offer sends on more than 16 audio and video sections: a participant publishes at most 16 tracks"
	for _, tc := range []struct {
		name, offer, want string
	}{
		{"sixteen sending", head + strings.Repeat(send, maxOfferMedia), ""},
		{"sixteen sending and many receiving", head + strings.Repeat(send, maxOfferMedia) + strings.Repeat(recv, 40), ""},
		{"sixteen sending and rejected ones", head + strings.Repeat(send, maxOfferMedia) + strings.Repeat(rejected, 4), ""},
		{"seventeen sending", head + strings.Repeat(send, maxOfferMedia+1), refusal},
		{"seventeen without a direction", head + strings.Repeat(audio, maxOfferMedia+1), refusal},
		{"seventeen sendrecv among receiving", head + strings.Repeat(recv, 3) + strings.Repeat(audio+"a=sendrecv\r\n", maxOfferMedia+1), refusal},
	} {
		err := checkSignalingOffer(tc.offer)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidSDP) || err.Error() != tc.want):
			t.Errorf("%s: got %v, want ErrInvalidSDP %q", tc.name, err, tc.want)
		}
	}
	if err := checkSignalingOffer("not sdp"); !errors.Is(err, ErrInvalidSDP) {
		t.Errorf("garbage: %v", err)
	}
}
