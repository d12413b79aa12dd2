package httpapi

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/actors"
)

// FuzzSignalingMessage: decoding a client frame never panics; a frame is
// either a known message or an error with a code a client can act on.
func FuzzSignalingMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"join","token":"abc"}`,
		`{"type":"offer","sdp":"v=0\r\n"}`,
		`{"type":"answer","sdp":"v=0\r\n"}`,
		`{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"candidate","candidate":null}`,
		`{"type":"mute","kind":"audio","muted":true}`,
		`{"type":"mute","track_id":"TR_x","muted":false}`,
		`{"type":"leave"}`,
		`{"type":"ping"}`,
		`{"type":"candidate","candidate":{"sdpMLineIndex":70000}}`,
		`{"type":"mute","kind":"audio","track_id":null,"muted":true}`,
		`{"type":null}`,
		`[]`, `null`, `"offer"`, `{`,
	} {
		f.Add([]byte(seed))
	}
	known := []string{msgJoin, msgOffer, msgAnswer, msgCandidate, msgMute, msgLeave, msgPing}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeClientMsg(b)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.code == "" || ae.status >= http.StatusInternalServerError {
				t.Fatalf("%q: error %v is not a client error", b, err)
			}
			return
		}
		if !slices.Contains(known, m.typ) {
			t.Fatalf("%q decoded as unknown type %q", b, m.typ)
		}
		switch m.typ {
		case msgOffer, msgAnswer:
			if m.sdp == "" {
				t.Fatalf("%q: %s without sdp", b, m.typ)
			}
		case msgJoin:
			if m.token == "" {
				t.Fatalf("%q: join without token", b)
			}
		case msgMute:
			if (m.track == "") == (m.kind == "") {
				t.Fatalf("%q: mute names neither or both", b)
			}
		case msgCandidate:
			if len(m.cand.Candidate) > maxCandidateLen {
				t.Fatalf("%q: candidate too long", b)
			}
		}
	})
}

// FuzzWHIPOffer: any body is either refused with a 400 that says why, or
// an SDP with audio or video the actors may be given.
func FuzzWHIPOffer(f *testing.F) {
	const head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	for _, seed := range []string{
		head + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=sendonly\r\n",
		head + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:96 VP8/90000\r\na=recvonly\r\n",
		head + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
		head, "", "v=0", "m=audio", "v=0\r\nm=video 9 RTP/AVP 0\r\n",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, offer string, whip bool) {
		kind := actors.ClientWHEP
		if whip {
			kind = actors.ClientWHIP
		}
		err := actors.ValidateOffer(kind, offer)
		if err == nil {
			return
		}
		ae, unexpected := toAPIError(err)
		if unexpected || ae.status != http.StatusBadRequest || ae.code != codeInvalidSDP || ae.message == "" {
			t.Fatalf("%q: %v is not a 400 invalid_sdp", offer, err)
		}
	})
}
