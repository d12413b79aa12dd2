package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// simMunge is a script's function that turns a Chromium offer of one video
// encoding into one of three told apart by SSRC alone, as applications
// asked libwebrtc for simulcast before rids: two more SSRCs (each with
// its retransmissions' SSRC, as the first has) declared like the first,
// and the three, lowest layer first, in an a=ssrc-group:SIM.
const simMunge = `const simMunge = (sdp) => {
		const lines = sdp.split("\r\n");
		const start = lines.findIndex((l) => l.startsWith("m=video"));
		let end = lines.findIndex((l, i) => i > start && l.startsWith("m="));
		if (end < 0) end = lines.length;
		const section = lines.slice(start, end);
		const fid = section.find((l) => l.startsWith("a=ssrc-group:FID "));
		if (!fid) throw new Error("no FID group in the video section");
		const [first] = fid.split(" ").slice(1);
		const prefix = "a=ssrc:" + first + " ";
		const attrs = section.filter((l) => l.startsWith(prefix)).map((l) => l.slice(prefix.length));
		const ssrc = () => 1 + Math.floor(Math.random() * 0xfffffffe);
		const [s2, r2, s3, r3] = [ssrc(), ssrc(), ssrc(), ssrc()];
		const added = ["a=ssrc-group:SIM " + [first, s2, s3].join(" "), "a=ssrc-group:FID " + s2 + " " + r2, "a=ssrc-group:FID " + s3 + " " + r3];
		for (const s of [s2, r2, s3, r3]) for (const a of attrs) added.push("a=ssrc:" + s + " " + a);
		let last = start;
		section.forEach((l, i) => { if (l.startsWith("a=ssrc")) last = start + i; });
		lines.splice(last + 1, 0, ...added);
		return lines.join("\r\n");
	};
	`

// whipPublishBySSRC is whipPublish with the camera offered in three layers
// by SSRC (simMunge) rather than by rid, scaled as the page's are: the
// first SSRC of the group a quarter of the camera's size, the second half.
func whipPublishBySSRC(t *testing.T) string {
	t.Helper()
	script := whipPublish
	for _, r := range []struct{ old, new string }{
		{`const pc = new RTCPeerConnection();`, simMunge + `const pc = new RTCPeerConnection();`},
		{`sendEncodings: [
		{rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000},
		{rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000},
		{rid: "f", maxBitrate: 1500000},
	]`, `sendEncodings: [{}]`},
		// The layers are the SIM group's SSRCs in order; libwebrtc sends
		// them all at the camera's size unless told to scale them.
		{`await pc.setLocalDescription();`, `const offer = await pc.createOffer();
	await pc.setLocalDescription({type: "offer", sdp: simMunge(offer.sdp)});
	const video = pc.getSenders().find((s) => s.track && s.track.kind === "video");
	const params = video.getParameters();
	if (params.encodings.length !== 3) throw new Error("Chromium made " + params.encodings.length + " encodings of the SIM group");
	[4, 2, 1].forEach((scale, i) => { params.encodings[i].scaleResolutionDownBy = scale; });
	await video.setParameters(params);`},
	} {
		if !strings.Contains(script, r.old) {
			t.Fatalf("whipPublish has no %q", r.old)
		}
		script = strings.Replace(script, r.old, r.new, 1)
	}
	return script
}

// TestBrowserWHIPSimulcastBySSRC: Chromium publishes its camera through
// WHIP in three layers told apart by SSRC alone (a=ssrc-group:SIM, no
// rids), and takes the answer. The REST API lists one video track with
// three layers, q, h and f in the group's order, which is also the order
// of their sizes (lowest first, as libwebrtc lists them), and a viewer's
// page decodes one of them.
func TestBrowserWHIPSimulcastBySSRC(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"ssrccam","name":"SSRC camera"}`)
	browser := newBrowser(t)

	token := s.joinToken(t, "ssrccam", "encoder", auth.RolePublisher)
	encoder := s.whipCamera(t, browser, "ssrccam", whipPublishBySSRC(t), token)
	if offer := evalJS[string](t, encoder, `window.whip.pc.localDescription.sdp`); !strings.Contains(offer, "a=ssrc-group:SIM ") || strings.Contains(offer, "a=rid:") {
		t.Fatalf("Chromium did not take the offer by SSRC:\n%s", offer)
	}
	if answer := evalJS[string](t, encoder, `window.whip.body`); strings.Contains(answer, "a=rid:") || strings.Contains(answer, "a=simulcast:") {
		t.Fatalf("the answer names rid layers:\n%s", answer)
	}
	s.viewWHIPCamera(t, browser, "ssrccam")
}

// whipCamera has a new page of browser publish to room by the WHIP
// script (whipPublish or one like it) with the publisher token, and waits
// until it is connected; it returns the page.
func (s *stack) whipCamera(t *testing.T, browser context.Context, room, script, token string) context.Context {
	t.Helper()
	encoder := openPage(t, browser, s.srv.URL+"/")
	if status := evalJS[int](t, encoder, fmt.Sprintf(script, "/whip/"+room, token)); status != http.StatusCreated {
		t.Fatalf("WHIP POST: %d %s", status, evalJS[string](t, encoder, `window.whip.body`))
	}
	waitPage(t, encoder, "the WHIP connection", `window.whip.pc.connectionState === "connected"`)
	return encoder
}

// viewWHIPCamera waits until the WHIP encoder of room (whipCamera)
// publishes one video track in the page's three layers, then has a
// viewer's page join and decode it, and returns the viewer's page.
func (s *stack) viewWHIPCamera(t *testing.T, browser context.Context, room string) context.Context {
	t.Helper()
	camera, layers := s.waitCamera(t, room, "encoder", pageLayers)
	t.Logf("the WHIP camera's layers: %+v", layers)

	viewer := openPage(t, browser, s.srv.URL+"/rooms/"+room+"?token="+s.joinToken(t, room, "viewer", auth.RoleSubscriber))
	clickJS(t, viewer, "join")
	var st pageStats
	poll.Within(pageWait{TB: t, Tab: viewer, More: func() string { return fmt.Sprintf("stats %+v", st) }}, browserDeadline, "the viewer to decode the WHIP camera", func() bool {
		st = evalJS[pageStats](t, viewer, `window.troupe.stats()`)
		return st.VideoFramesDecoded > 0 && st.AudioPacketsReceived > 0
	})
	if st.InboundVideo != 1 {
		t.Fatalf("the viewer receives %d video streams, want 1", st.InboundVideo)
	}
	if got := s.receivedLayer(t, room, "viewer", camera); got < 0 {
		t.Fatalf("the REST list says the viewer receives no layer of %s", camera)
	}
	t.Logf("viewer: %+v", st)
	return viewer
}
