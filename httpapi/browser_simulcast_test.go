package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// The page's camera layers (app.js cameraLayers), lowest first.
var pageLayers = []string{"q", "h", "f"}

// restLayer is a simulcast layer as the REST participants list shows it.
type restLayer struct {
	RID    string `json:"rid"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Active bool   `json:"active"`
}

// restParticipant is what the browser tests read of a participant in the
// REST participants list: its tracks, and what it receives.
type restParticipant struct {
	ID       string `json:"id"`
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Tracks   []struct {
		ID        string      `json:"id"`
		Kind      string      `json:"kind"`
		Simulcast bool        `json:"simulcast"`
		Layers    []restLayer `json:"layers"`
	} `json:"tracks"`
	Receiving *struct {
		Tracks []restReceived `json:"tracks"`
	} `json:"receiving"`
}

// restReceived is what the REST participants list says of a track a
// participant receives.
type restReceived struct {
	TrackID     string `json:"track_id"`
	Layer       int    `json:"layer"`
	Paused      bool   `json:"paused"`
	PauseReason string `json:"pause_reason"`
}

// restParticipants is the room's participants list, typed.
func (s *stack) restParticipants(t *testing.T, room string) []restParticipant {
	t.Helper()
	var out []restParticipant
	for _, p := range s.participants(t, room) {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var rp restParticipant
		if err := json.Unmarshal(b, &rp); err != nil {
			t.Fatalf("participant %s: %v", b, err)
		}
		out = append(out, rp)
	}
	return out
}

// received is what REST lists of track as the participant named name
// (its name or identity) in room receives it; false when it lists the
// participant receiving none of it.
func (s *stack) received(t *testing.T, room, name, track string) (restReceived, bool) {
	t.Helper()
	for _, p := range s.restParticipants(t, room) {
		if (p.Name != name && p.Identity != name) || p.Receiving == nil {
			continue
		}
		for _, tr := range p.Receiving.Tracks {
			if tr.TrackID == track {
				return tr, true
			}
		}
	}
	return restReceived{}, false
}

// receivedLayer is the layer of track that the participant named name
// (its name or identity) in room receives, as REST lists it; -1 when it
// receives none of it, or has it paused (received tells them apart).
func (s *stack) receivedLayer(t *testing.T, room, name, track string) int {
	t.Helper()
	if tr, ok := s.received(t, room, name, track); ok && !tr.Paused {
		return tr.Layer
	}
	return -1
}

// pausedFor reports whether the participant named name in room receives
// track and REST lists it paused, for reason ("subscriber" or
// "bandwidth"): a track it does not receive at all is not paused.
func (s *stack) pausedFor(t *testing.T, room, name, track, reason string) bool {
	t.Helper()
	tr, ok := s.received(t, room, name, track)
	return ok && tr.Paused && tr.PauseReason == reason
}

// waitCamera waits until the participant named name (its name or
// identity) in room publishes one video track in the three layers of
// want, each with its size known, and returns the track's id and layers.
// More than one video track fails the test at once: a camera sent in
// layers is one track.
func (s *stack) waitCamera(t *testing.T, room, name string, want []string) (string, []restLayer) {
	t.Helper()
	var id string
	var layers []restLayer
	poll.Within(t, browserDeadline, name+"'s camera as one track in layers "+fmt.Sprint(want), func() bool {
		for _, p := range s.restParticipants(t, room) {
			if p.Name != name && p.Identity != name {
				continue
			}
			var video int
			for _, tr := range p.Tracks {
				if tr.Kind != "video" {
					continue
				}
				if video++; video > 1 {
					t.Fatalf("%s's camera is %d video tracks: %+v", name, video, p.Tracks)
				}
				id, layers = tr.ID, tr.Layers
				if !tr.Simulcast {
					return false
				}
			}
		}
		if len(layers) != len(want) {
			return false
		}
		for i, l := range layers {
			if l.RID != want[i] || l.Width == 0 || l.Height == 0 {
				return false
			}
		}
		return true
	})
	return id, layers
}

// pageEncodings is what a publishing page's camera encodes against the
// last layers message it got.
type pageEncodings struct {
	Active  []string `json:"active"`  // the layers message's active
	Paused  []string `json:"paused"`  // and paused
	Sending []string `json:"sending"` // the encodings on
	Stopped []string `json:"stopped"` // and off
}

// follows tells whether the encodings follow the layers message: each
// layer it pauses is off and each it names active is on.
func (e pageEncodings) follows() bool {
	if e.Active == nil {
		return false
	}
	for _, rid := range e.Paused {
		if !slices.Contains(e.Stopped, rid) {
			return false
		}
	}
	for _, rid := range e.Active {
		if !slices.Contains(e.Sending, rid) {
			return false
		}
	}
	return true
}

func encodingsOf(t *testing.T, tab context.Context) pageEncodings {
	t.Helper()
	return evalJS[pageEncodings](t, tab, `(() => {
		const l = window.troupe.layers;
		if (!l) return {};
		const sender = window.troupe.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
		const e = sender.getParameters().encodings;
		return {active: l.active, paused: l.paused,
			sending: e.filter((x) => x.active).map((x) => x.rid), stopped: e.filter((x) => !x.active).map((x) => x.rid)};
	})()`)
}

// TestBrowserSimulcast: a page publishes its camera in three layers
// (simulcast). The REST API lists one video track with the three; a second
// page receives one video stream of it and decodes it; the publishing page
// stops encoding the layers the server says nobody receives, and encodes
// them again when the server asks for them again.
func TestBrowserSimulcast(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)
	alice := openPage(t, browser, s.srv.URL+"/rooms/simulcast?name=alice")
	clickJS(t, alice, "join")
	waitPage(t, alice, "alice to join", `window.troupe.state === "joined"`)
	camera, layers := s.waitCamera(t, "simulcast", "alice", pageLayers)
	start := time.Now()
	t.Logf("alice's layers: %+v", layers)

	// bob's tiles are 480x270, whoever comes: alice's there needs her
	// middle layer, and not the top one.
	bob := openPage(t, browser, s.srv.URL+"/rooms/simulcast?name=bob")
	if err := chromedp.Do(bob, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	forceTileSize(t, bob, 480, 270)
	clickJS(t, bob, "join")
	var st pageStats
	poll.Within(t, browserDeadline, "bob's decoded video", func() bool {
		st = evalJS[pageStats](t, bob, `window.troupe.stats()`)
		return st.VideoFramesDecoded > 0
	})
	if st.InboundVideo != 1 {
		t.Fatalf("bob receives %d video streams, want 1", st.InboundVideo)
	}

	// What alice encodes follows the last layers message.
	var enc pageEncodings
	follows := func() bool { enc = encodingsOf(t, alice); return enc.follows() }
	more := func() string {
		return fmt.Sprintf("alice: %+v, her page: %s; bob's tiles: %s", enc, pageState(alice),
			evalJS[string](t, bob, `[...document.querySelectorAll(".tile video")].map((v) => v.clientWidth + "x" + v.clientHeight).join(" ")`))
	}
	poll.Within(pageWait{TB: t, Tab: bob, More: more}, browserDeadline, "alice's encodings to follow the server: q and h on, f off", func() bool {
		return follows() && slices.Equal(enc.Active, pageLayers[:2]) && slices.Equal(enc.Stopped, pageLayers[2:])
	})
	t.Logf("alice: %+v after %v", enc, time.Since(start))

	// A 180p room needs the lowest layer alone: alice stops the others,
	// and bob goes on decoding.
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/simulcast", `{"config":{"quality":"180p"}}`), http.StatusOK)
	poll.Within(t, browserDeadline, "alice to stop the layers above 180p", func() bool {
		return follows() && slices.Equal(enc.Active, pageLayers[:1]) && slices.Equal(enc.Stopped, pageLayers[1:])
	})
	t.Logf("alice: %+v after %v", enc, time.Since(start))
	frames := st.VideoFramesDecoded
	poll.Within(t, browserDeadline, "bob's video to go on", func() bool {
		st = evalJS[pageStats](t, bob, `window.troupe.stats()`)
		return st.VideoFramesDecoded > frames+30
	})
	t.Logf("bob's video went on after %v", time.Since(start))

	// Back to 720p: bob's tile needs more than the lowest layer again, and
	// alice turns on what the server asks for (off until now).
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/simulcast", `{"config":{"quality":"720p"}}`), http.StatusOK)
	poll.Within(t, browserDeadline, "alice to encode a layer above the lowest again", func() bool {
		return follows() && len(enc.Active) > 1
	})
	t.Logf("alice: %+v after %v", enc, time.Since(start))
	poll.Within(t, browserDeadline, "bob to receive a layer above the lowest", func() bool {
		return s.receivedLayer(t, "simulcast", "bob", camera) > 0
	})
	t.Logf("bob receives a layer above the lowest after %v", time.Since(start))
}

// forceTileSize makes every tile of tab's page width x height CSS pixels,
// whatever the window and the view: the page asks for the layer that size
// needs.
func forceTileSize(t *testing.T, tab context.Context, width, height int) {
	t.Helper()
	evalJS[bool](t, tab, fmt.Sprintf(`(() => {
		const st = document.createElement("style");
		st.textContent = "#tiles { grid-template-columns: %[1]dpx !important; grid-template-rows: %[2]dpx !important; grid-auto-rows: %[2]dpx !important; }";
		document.head.append(st);
		return true; })()`, width, height))
}

// TestBrowserSimulcastTileSizes: two viewers' pages show a page's
// three-layer camera in tiles of different sizes; each receives one video
// stream and decodes the layer its tile needs (the smallest that covers
// it), as its statistics and the REST list agree; and the publishing page
// stops the layer neither needs. One viewer is there before the camera
// (its tracks come one by one to a tile that exists), one comes after.
func TestBrowserSimulcastTileSizes(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"tiles","name":"Tiles"}`)
	browser := newBrowser(t)

	viewers := []struct {
		name          string
		width, height int // the tile, in CSS pixels (the device's too: headless Chromium's scale is 1)
		layer         int // the smallest layer that covers it
	}{
		{"thumb", 240, 135, 0},
		{"medium", 560, 315, 1},
	}
	tabs := make([]context.Context, len(viewers))
	join := func(i int) {
		v := viewers[i]
		tabs[i] = openPage(t, browser, s.srv.URL+"/rooms/tiles?token="+s.joinToken(t, "tiles", v.name, auth.RoleSubscriber))
		if err := chromedp.Do(tabs[i], chromedp.EmulateViewport(1280, 800)); err != nil {
			t.Fatal(err)
		}
		forceTileSize(t, tabs[i], v.width, v.height)
		clickJS(t, tabs[i], "join")
		waitPage(t, tabs[i], v.name+" to join", `window.troupe.state === "joined"`)
	}
	join(0)
	alice := openPage(t, browser, s.srv.URL+"/rooms/tiles?token="+s.joinToken(t, "tiles", "alice", auth.RolePublisher))
	clickJS(t, alice, "join")
	waitPage(t, alice, "alice to join", `window.troupe.state === "joined"`)
	camera, layers := s.waitCamera(t, "tiles", "alice", pageLayers)
	join(1)

	for i, v := range viewers {
		want := layers[v.layer]
		size := fmt.Sprintf("%dx%d", want.Width, want.Height)
		var st pageStats
		got := -1
		poll.Within(pageWait{TB: t, Tab: tabs[i], More: func() string { return fmt.Sprintf("layer %d, stats %+v", got, st) }},
			browserDeadline, fmt.Sprintf("%s to decode layer %s (%s)", v.name, want.RID, size), func() bool {
				got = s.receivedLayer(t, "tiles", v.name, camera)
				st = evalJS[pageStats](t, tabs[i], `window.troupe.stats()`)
				return got == v.layer && st.InboundVideo == 1 && slices.Equal(st.VideoSizes, []string{size}) && st.VideoFramesDecoded > 0
			})
		t.Logf("%s: layer %d, %+v", v.name, got, st)
	}

	// Neither tile needs the top layer: alice stops it.
	var enc pageEncodings
	poll.Within(t, browserDeadline, "alice to encode the two lower layers alone", func() bool {
		enc = encodingsOf(t, alice)
		return enc.follows() && slices.Equal(enc.Active, pageLayers[:2]) && slices.Equal(enc.Stopped, pageLayers[2:])
	})
	t.Logf("alice: %+v", enc)
}

// whipPublish is a script that publishes the page's fake camera and
// microphone through WHIP to %[1]q with the bearer token %[2]q: the camera
// in the web page's three layers, the offer with every candidate (WHIP
// does not trickle). It keeps the peer connection and the session's
// Location in window.whip and resolves to the POST's status.
const whipPublish = `(async () => {
	const stream = await navigator.mediaDevices.getUserMedia({video: {width: {ideal: 1280}, height: {ideal: 720}}, audio: true});
	const pc = new RTCPeerConnection();
	pc.addTransceiver(stream.getVideoTracks()[0], {direction: "sendonly", streams: [stream], sendEncodings: [
		{rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000},
		{rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000},
		{rid: "f", maxBitrate: 1500000},
	]});
	pc.addTransceiver(stream.getAudioTracks()[0], {direction: "sendonly", streams: [stream]});
	await pc.setLocalDescription();
	if (pc.iceGatheringState !== "complete") {
		await new Promise((ok) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && ok()));
	}
	const r = await fetch(%[1]q, {method: "POST", headers: {"Content-Type": "application/sdp", Authorization: "Bearer " + %[2]q}, body: pc.localDescription.sdp});
	const body = await r.text();
	window.whip = {pc, location: r.headers.get("Location"), status: r.status, body};
	if (r.status === 201) await pc.setRemoteDescription({type: "answer", sdp: body});
	return r.status;
})()`

// TestBrowserWHIPSimulcast: Chromium publishes its camera in three layers
// through WHIP (no web page, no signaling socket: a script's POST of its
// offer). The REST API lists one video track with the three layers, a
// viewer's page decodes one of them, and the session's DELETE ends it.
func TestBrowserWHIPSimulcast(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"whipcam","name":"WHIP camera"}`)
	browser := newBrowser(t)

	token := s.joinToken(t, "whipcam", "encoder", auth.RolePublisher)
	encoder := s.whipCamera(t, browser, "whipcam", whipPublish, token)
	viewer := s.viewWHIPCamera(t, browser, "whipcam")

	status := evalJS[int](t, encoder, fmt.Sprintf(`fetch(window.whip.location, {method: "DELETE", headers: {Authorization: "Bearer " + %q}}).then((r) => r.status)`, token))
	if status != http.StatusOK {
		t.Fatalf("WHIP DELETE: %d", status)
	}
	waitPage(t, viewer, "the WHIP camera's tile to go", `document.querySelectorAll(".tile").length === 0`)
}
