package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// trickler is a pion WHIP or WHEP client that trickles: it posts its offer
// without candidates, and sends them in a PATCH of its session.
type trickler struct {
	s           *stack
	pc          *webrtc.PeerConnection
	token, loc  string
	etag        string // the POST's
	answerUfrag string // the server's first ICE ufrag
}

// postUntrickled posts pc's offer, made without candidates, to path, and
// applies the answer without the server's candidates: ICE can then
// connect only once the server has the client's candidates (the client
// answers the server's checks, from a candidate it learns then). It waits
// until pc has gathered its own.
func (s *stack) postUntrickled(t *testing.T, path, token string, pc *webrtc.PeerConnection) *trickler {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(offer.SDP, "a=candidate") {
		t.Fatal("the offer has candidates")
	}
	r := s.whipPost(t, path, token, "application/sdp", offer.SDP)
	mustStatus(t, r, http.StatusCreated)
	c := &trickler{s: s, pc: pc, token: token, loc: r.header.Get("Location"), etag: r.header.Get("ETag")}
	if c.etag == "" {
		t.Fatal("no ETag")
	}
	answer, err := rtc.ICEFragmentOf(string(r.body))
	if err != nil {
		t.Fatal(err)
	}
	c.answerUfrag = answer.Ufrag
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: withoutCandidates(string(r.body))}); err != nil {
		t.Fatal(err)
	}
	poll.Closed(t, "the client's candidates", gathered)
	return c
}

// withoutCandidates returns the description d without its candidates.
func withoutCandidates(d string) string {
	var out []string
	for _, line := range strings.SplitAfter(d, "\r\n") {
		if !strings.HasPrefix(line, "a=candidate:") && !strings.HasPrefix(line, "a=end-of-candidates") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// fragment returns the client's ICE credentials and gathered candidates
// as a trickle ICE fragment.
func (c *trickler) fragment(t *testing.T) *rtc.ICEFragment {
	t.Helper()
	f, err := rtc.ICEFragmentOf(c.pc.LocalDescription().SDP)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != 1 || len(f.Sections[0].Candidates) == 0 {
		t.Fatalf("the client's fragment %q", f)
	}
	return f
}

// patch sends body as a trickle ICE fragment with If-Match ifMatch (none
// when ""), with the session's token.
func (c *trickler) patch(t *testing.T, body, ifMatch string) response {
	t.Helper()
	hs := []header{bearer(c.token), {"Content-Type", contentTypeTrickleICE}}
	if ifMatch != "" {
		hs = append(hs, header{"If-Match", ifMatch})
	}
	return c.s.do(t, http.MethodPatch, c.loc, body, hs...)
}

// TestWHIPTrickleICE: a pion WHIP publisher that offers without
// candidates and trickles them connects, and a viewer receives its media.
// Every refused PATCH (412, 428, 400s, 413) changes nothing: the media
// goes on, and the ETag still names the session. Then the publisher
// restarts ICE: the server answers its new credentials and candidates
// with a new ETag, the client connects again, and the media goes on.
func TestWHIPTrickleICE(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"trickle","name":"Trickle"}`)
	token := s.joinToken(t, "trickle", "encoder", auth.RolePublisher)
	pc, media := publishingPeer(t)
	iceConnected := notifyConnected(pc)
	c := s.postUntrickled(t, "/whip/trickle", token, pc)
	frag := c.fragment(t)
	// With candidates the server cannot use, which it drops (RFC 9725): a
	// host name's, an mDNS name's (the server resolves none), TCP active,
	// an unknown type.
	sent := *frag
	sent.Sections = []rtc.ICEFragmentSection{frag.Sections[0]}
	sent.Sections[0].Candidates = append(slices.Clone(frag.Sections[0].Candidates),
		"candidate:1 1 udp 2122260223 host.example.com 61764 typ host",
		"candidate:4 1 udp 2122260223 2b6c4a9e-client.local 61766 typ host",
		"candidate:2 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active",
		"candidate:3 1 udp 2122260223 192.0.2.1 61765 typ elsewhere")
	r := c.patch(t, sent.String(), c.etag)
	mustStatus(t, r, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Fatalf("a 204 with a body: %q", r.body)
	}
	poll.Closed(t, "ICE to connect with the trickled candidates", iceConnected)
	media.run(t)

	viewer := s.dialWS(t, "viewer", s.joinToken(t, "trickle", "viewer", auth.RoleSubscriber))
	defer viewer.close()
	video := viewer.receiver("video")
	poll.Until(t, "50 video packets at the viewer", func() bool { return video.Stats().Packets >= 50 })

	// Each refusal names its fault and changes nothing.
	sec := frag.Sections[0]
	head := "a=ice-ufrag:" + frag.Ufrag + "\r\na=ice-pwd:" + frag.Pwd + "\r\n"
	section := func(mline, mid string, lines ...string) string {
		return "m=" + mline + "\r\na=mid:" + mid + "\r\n" + strings.Join(lines, "")
	}
	good := "a=candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host\r\n"
	otherMedia := "video 9 UDP/TLS/RTP/SAVPF 96"
	if sec.Media == "video" {
		otherMedia = "audio 9 UDP/TLS/RTP/SAVPF 111"
	}
	for _, tc := range []struct {
		name, body, ifMatch string
		status              int
		code, says          string
	}{
		{"another ICE session", frag.String(), `"PA_other"`, http.StatusPreconditionFailed, codePreconditionFailed, "ICE session"},
		{"weak tag", frag.String(), "W/" + c.etag, http.StatusPreconditionFailed, codePreconditionFailed, "weak"},
		{"no If-Match", frag.String(), "", http.StatusPreconditionRequired, codePreconditionRequired, "If-Match is required"},
		{"unquoted If-Match", frag.String(), strings.Trim(c.etag, `"`), http.StatusBadRequest, codeInvalidIfMatch, "not an entity tag"},
		{"not SDP", `{"candidate":"candidate:1 1 udp 1 192.0.2.1 5 typ host"}`, c.etag, http.StatusBadRequest, codeInvalidSDP, "not an SDP line"},
		{"empty", "\r\n", c.etag, http.StatusBadRequest, codeEmptyBody, "trickle ICE SDP fragment"},
		{"unknown mid", head + section(sec.MLine, sec.Mid, good) + section(sec.MLine, "nope", good), c.etag, http.StatusBadRequest, codeInvalidSDP, `no media section of mid "nope"`},
		{"other media", head + section(otherMedia, sec.Mid, good), c.etag, http.StatusBadRequest, codeInvalidSDP, "not " + strings.Fields(otherMedia)[0]},
		{"unknown ufrag", "a=ice-ufrag:zzzz\r\n" + section(sec.MLine, sec.Mid, good), c.etag, http.StatusBadRequest, codeInvalidSDP, `"zzzz" is not the session's`},
		{"wrong pwd", "a=ice-ufrag:" + frag.Ufrag + "\r\na=ice-pwd:0123456789012345678901\r\n" + section(sec.MLine, sec.Mid, good), c.etag, http.StatusBadRequest, codeInvalidSDP, "a=ice-pwd is not the session's"},
		{"restart keeping the pwd", "a=ice-ufrag:zzzz\r\na=ice-pwd:" + frag.Pwd + "\r\n" + section(sec.MLine, sec.Mid, good), "*", http.StatusBadRequest, codeInvalidSDP, "needs a new a=ice-pwd"},
		{"unparsable candidate", head + section(sec.MLine, sec.Mid, good, "a=candidate:1 1 udp high 192.0.2.1 5 typ host\r\n"), c.etag, http.StatusBadRequest, codeInvalidSDP, "line 6: the candidate does not parse"},
		{"candidate of another ufrag", head + section(sec.MLine, sec.Mid, "a=candidate:1 1 udp 1 192.0.2.1 5 typ host ufrag wxyz\r\n"), c.etag, http.StatusBadRequest, codeInvalidSDP, `names ufrag "wxyz"`},
		{"too large", head + section(sec.MLine, sec.Mid, strings.Repeat(good, 400)), c.etag, http.StatusRequestEntityTooLarge, codeBodyTooLarge, "ICE fragment exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.patch(t, tc.body, tc.ifMatch)
			mustStatus(t, r, tc.status)
			if got := r.errorCode(t); got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.says) {
				t.Fatalf("message %q does not say %q", msg, tc.says)
			}
		})
	}
	// Another identity's token, or none, is refused before the session.
	other := s.joinToken(t, "trickle", "someone-else", auth.RolePublisher)
	for tok, want := range map[string]int{other: http.StatusForbidden, "": http.StatusUnauthorized} {
		hs := []header{{"Authorization", ""}, {"Content-Type", contentTypeTrickleICE}, {"If-Match", c.etag}}
		if tok != "" {
			hs[0] = bearer(tok)
		}
		mustStatus(t, s.do(t, http.MethodPatch, c.loc, frag.String(), hs...), want)
	}
	now := video.Stats().Packets
	poll.Until(t, "50 more video packets after the refusals", func() bool { return video.Stats().Packets >= now+50 })
	checkIntact(t, "viewer video", video)
	if pc.ICEConnectionState() != webrtc.ICEConnectionStateConnected {
		t.Fatalf("ICE is %s after the refusals", pc.ICEConnectionState())
	}
	// The ETag still names the session; If-Match may list it among others.
	mustStatus(t, c.patch(t, "a=end-of-candidates\r\n", `"PA_other", `+c.etag), http.StatusNoContent)

	etag := c.restart(t, iceConnected)
	now = video.Stats().Packets
	poll.Until(t, "50 more video packets after the restart", func() bool { return video.Stats().Packets >= now+50 })

	// The old ETag names a session that is gone; the new one trickles.
	mustStatus(t, c.patch(t, "a=end-of-candidates\r\n", c.etag), http.StatusPreconditionFailed)
	mustStatus(t, c.patch(t, "a=end-of-candidates\r\n", etag), http.StatusNoContent)
	mustStatus(t, s.do(t, http.MethodDelete, c.loc, "", bearer(token)), http.StatusOK)

	// The fragments the participant took, by result; the refusals of its
	// actor's tag check and of the edge (If-Match, size) are not the
	// peer's.
	for result, want := range map[string]float64{"trickle": 3, "restart": 1, "refused": 8} {
		if got := promtest.Value(t, s.reg, "troupe_rtc_ice_fragments_total", "result", result); got != want {
			t.Errorf("troupe_rtc_ice_fragments_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// restart restarts ICE from the client: a restart offer, its new
// credentials and candidates sent with If-Match "*", the server's new
// ones in the 200 applied as the answer. It waits until ICE has connected
// again (connected receives each connection) and returns the new ETag.
func (c *trickler) restart(t *testing.T, connected chan struct{}) string {
	t.Helper()
	// The connections so far are not the one the restart waits for; the
	// client's agent, restarted by its offer, connects again only once it
	// has the server's new credentials.
	for range len(connected) {
		<-connected
	}
	old := c.fragment(t)
	restart, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(restart); err != nil {
		t.Fatal(err)
	}
	poll.Closed(t, "the client's new candidates", gathered)
	frag := c.fragment(t)
	if frag.Ufrag == old.Ufrag {
		t.Fatal("the client's restart kept its ufrag")
	}
	r := c.patch(t, frag.String(), "*")
	mustStatus(t, r, http.StatusOK)
	etag := r.header.Get("ETag")
	if r.header.Get("Content-Type") != contentTypeTrickleICE || etag == "" || etag == c.etag {
		t.Fatalf("restart answered %q with ETag %q (was %q)", r.header.Get("Content-Type"), etag, c.etag)
	}
	server, err := rtc.ParseICEFragment(string(r.body))
	if err != nil {
		t.Fatalf("the restart's answer %q: %v", r.body, err)
	}
	if server.Ufrag == "" || server.Ufrag == c.answerUfrag || server.Pwd == "" || len(server.Sections) != 1 || len(server.Sections[0].Candidates) == 0 {
		t.Fatalf("the restart's answer %q (the first ufrag was %q)", r.body, c.answerUfrag)
	}
	// The client takes the server's new credentials and candidates as the
	// answer to its restart offer (RFC 9725: the rest is as negotiated).
	answer := withICE(withoutCandidates(c.pc.CurrentRemoteDescription().SDP), server)
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	poll.Closed(t, "ICE to connect again after the restart", connected)
	return etag
}

// notifyConnected returns a channel that receives each time pc's ICE
// connects.
func notifyConnected(pc *webrtc.PeerConnection) chan struct{} {
	connected := make(chan struct{}, 8)
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if st == webrtc.ICEConnectionStateConnected {
			connected <- struct{}{}
		}
	})
	return connected
}

// withICE returns the description d with the credentials and candidates
// of f in each of its sections.
func withICE(d string, f *rtc.ICEFragment) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(d, "\r\n") {
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			line = "a=ice-ufrag:" + f.Ufrag + "\r\n"
		case strings.HasPrefix(line, "a=ice-pwd:"):
			line = "a=ice-pwd:" + f.Pwd + "\r\n"
			for _, c := range f.Sections[0].Candidates {
				line += "a=" + c + "\r\n"
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// TestWHEPTrickleICE: a pion WHEP viewer that offers without candidates
// and trickles them receives a WHIP publisher's media.
func TestWHEPTrickleICE(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"whept","name":"WHEP trickle"}`)
	s.whipPublish(t, "whept", s.joinToken(t, "whept", "encoder", auth.RolePublisher))

	pc := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	got := make(chan *rtctest.Receiver, 2)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		rc := rtctest.NewReceiver(tr)
		got <- rc
		rc.Run()
	})
	connected := notifyConnected(pc)
	c := s.postUntrickled(t, "/whep/whept", s.joinToken(t, "whept", "viewer", auth.RoleSubscriber), pc)
	// The candidates one PATCH at a time, as a client trickles them as
	// it gathers; the end of candidates last.
	f := c.fragment(t)
	for _, cand := range f.Sections[0].Candidates {
		one := rtc.ICEFragment{Ufrag: f.Ufrag, Pwd: f.Pwd, Sections: []rtc.ICEFragmentSection{
			{Media: f.Sections[0].Media, MLine: f.Sections[0].MLine, Mid: f.Sections[0].Mid, Candidates: []string{cand}},
		}}
		mustStatus(t, c.patch(t, one.String(), c.etag), http.StatusNoContent)
	}
	mustStatus(t, c.patch(t, "a=ice-ufrag:"+f.Ufrag+"\r\na=end-of-candidates\r\n", c.etag), http.StatusNoContent)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	var receivers []*rtctest.Receiver
	for range 2 {
		select {
		case rc := <-got:
			poll.Until(t, "50 packets at the WHEP viewer", func() bool { return rc.Stats().Packets >= 50 })
			checkIntact(t, "WHEP viewer", rc)
			receivers = append(receivers, rc)
		case <-ctx.Done():
			t.Fatal("the trickling WHEP viewer got fewer than 2 tracks")
		}
	}
	// The viewer restarts ICE; its media goes on.
	etag := c.restart(t, connected)
	for _, rc := range receivers {
		now := rc.Stats().Packets
		poll.Until(t, "50 more packets at the WHEP viewer after its restart", func() bool { return rc.Stats().Packets >= now+50 })
	}
	mustStatus(t, c.patch(t, "a=end-of-candidates\r\n", etag), http.StatusNoContent)
	// A JSON PATCH still sets what the viewer asks of its video.
	r := s.do(t, http.MethodPatch, c.loc, `{"max_quality":"360p"}`, bearer(c.token), header{"Content-Type", contentTypeJSON})
	mustStatus(t, r, http.StatusNoContent)
}

// If-Match as RFC 9110 has it: "*" or a list of entity tags, over one or
// more header lines; strong tags are returned unquoted.
func TestIfMatchTags(t *testing.T) {
	for _, c := range []struct {
		values []string
		tags   []string
		status int
	}{
		{values: []string{`"PA_a"`}, tags: []string{"PA_a"}},
		{values: []string{`*`}, tags: []string{"*"}},
		{values: []string{`"a", W/"b" , "c"`, `"d"`}, tags: []string{"a", "c", "d"}},
		{values: []string{`""`}, tags: []string{""}},
		{values: nil, status: http.StatusPreconditionRequired},
		{values: []string{" ", ","}, status: http.StatusPreconditionRequired},
		{values: []string{`W/"a"`}, status: http.StatusPreconditionFailed},
		{values: []string{`PA_a`}, status: http.StatusBadRequest},
		{values: []string{`"a`}, status: http.StatusBadRequest},
		{values: []string{`"a"b"`}, status: http.StatusBadRequest},
		{values: []string{`W/`}, status: http.StatusBadRequest},
	} {
		tags, err := ifMatchTags(c.values)
		if c.status != 0 {
			ae, _ := toAPIError(err)
			if err == nil || ae.status != c.status {
				t.Errorf("If-Match %q: %v, want a %d", c.values, err, c.status)
			}
			continue
		}
		if err != nil || !slices.Equal(tags, c.tags) {
			t.Errorf("If-Match %q: %q, %v; want %q", c.values, tags, err, c.tags)
		}
	}
}

// FuzzIfMatchTags: any If-Match value is read or refused with a 400, 412
// or 428, never a panic, and what it returns is "*" or tags without a
// quote.
func FuzzIfMatchTags(f *testing.F) {
	for _, v := range []string{`"PA_a"`, `*`, `"a", W/"b"`, `W/`, `""`, `"a"b"`} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		tags, err := ifMatchTags([]string{v})
		if err != nil {
			ae, _ := toAPIError(err)
			if ae.status != http.StatusBadRequest && ae.status != http.StatusPreconditionFailed && ae.status != http.StatusPreconditionRequired {
				t.Fatalf("If-Match %q: %v", v, err)
			}
			return
		}
		for _, tag := range tags {
			if strings.Contains(tag, `"`) {
				t.Fatalf("If-Match %q gave the tag %q", v, tag)
			}
		}
	})
}

// TestWHIPSimulcastICERestart: a WHIP camera in three rid layers that
// trickles its candidates restarts ICE, and its layers go on: the server
// applies its offer again, layers and all, with the new credentials.
func TestWHIPSimulcastICERestart(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"simrestart","name":"Simulcast restart"}`)
	pc, camera := simulcastCamera(t)
	connected := notifyConnected(pc)
	c := s.postUntrickled(t, "/whip/simrestart", s.joinToken(t, "simrestart", "encoder", auth.RolePublisher), pc)
	if err := camera.Negotiated(pc); err != nil {
		t.Fatal(err)
	}
	mustStatus(t, c.patch(t, c.fragment(t).String(), c.etag), http.StatusNoContent)
	poll.Closed(t, "ICE to connect with the trickled candidates", connected)
	defer runCamera(t, camera, pc)()
	s.checkOneSimulcastTrack(t, "simrestart")

	viewer := s.dialWS(t, "watcher", s.joinToken(t, "simrestart", "watcher", auth.RoleSubscriber))
	defer viewer.close()
	video := viewer.receiver("video")
	// The camera's payloads are not rtctest.Sender's: the receiver counts
	// them as corrupt.
	received := func() int {
		st := video.Stats()
		return st.Packets + st.Corrupt
	}
	poll.Until(t, "50 video packets at the viewer", func() bool { return received() >= 50 })
	c.restart(t, connected)
	now := received()
	poll.Until(t, "50 more video packets after the camera's restart", func() bool { return received() >= now+50 })
}
