package httpapi

import (
	"net/http"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// TestBrowserSimulcast: a page publishes its camera in layers (simulcast).
// The REST API lists one video track with its layers; a second page
// receives one video stream of it and decodes it; and the publishing page
// stops encoding the layers the server says nobody receives.
func TestBrowserSimulcast(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)
	alice := openPage(t, browser, s.srv.URL+"/rooms/simulcast?name=alice")
	clickJS(t, alice, "join")

	var layers []any
	waitPage(t, alice, "alice to join", `window.troupe.state === "joined"`)
	poll.Within(t, browserDeadline, "alice's camera as one track with layers", func() bool {
		for _, p := range s.participants(t, "simulcast") {
			var video []map[string]any
			for _, tr := range p["tracks"].([]any) {
				if tr := tr.(map[string]any); tr["kind"] == "video" {
					video = append(video, tr)
				}
			}
			if len(video) > 1 {
				t.Fatalf("alice's camera is %d video tracks", len(video))
			}
			if len(video) == 1 && video[0]["simulcast"] == true {
				layers, _ = video[0]["layers"].([]any)
			}
		}
		return len(layers) >= 2
	})
	t.Logf("alice's layers: %v", layers)

	bob := openPage(t, browser, s.srv.URL+"/rooms/simulcast?name=bob")
	clickJS(t, bob, "join")
	var st pageStats
	poll.Within(t, browserDeadline, "bob's decoded video", func() bool {
		st = evalJS[pageStats](t, bob, `window.troupe.stats()`)
		return st.VideoFramesDecoded > 0
	})
	if n := evalJS[int](t, bob, `window.troupe.stats().then((s) => s.inboundVideo)`); n != 1 {
		t.Fatalf("bob receives %d video streams, want 1", n)
	}

	// What alice encodes follows the last layers message.
	type encodings struct {
		Active  []string `json:"active"`
		Paused  []string `json:"paused"`
		Sending []string `json:"sending"`
		Stopped []string `json:"stopped"`
	}
	var enc encodings
	follows := func() bool {
		enc = evalJS[encodings](t, alice, `(() => {
			const l = window.troupe.layers;
			if (!l) return {};
			const sender = window.troupe.pc.getSenders().find((s) => s.track && s.track.kind === 'video');
			const e = sender.getParameters().encodings;
			return {active: l.active, paused: l.paused,
				sending: e.filter((x) => x.active).map((x) => x.rid), stopped: e.filter((x) => !x.active).map((x) => x.rid)};
		})()`)
		if enc.Active == nil {
			return false
		}
		for _, rid := range enc.Paused {
			if !slices.Contains(enc.Stopped, rid) {
				return false
			}
		}
		for _, rid := range enc.Active {
			if !slices.Contains(enc.Sending, rid) {
				return false
			}
		}
		return true
	}
	poll.Within(t, browserDeadline, "alice's encodings to follow the server", follows)
	t.Logf("alice: %+v", enc)

	// A 180p room needs the lowest layer alone: alice stops the others,
	// and bob goes on decoding.
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/simulcast", `{"config":{"quality":"180p"}}`), http.StatusOK)
	poll.Within(t, browserDeadline, "alice to stop the layers above 180p", func() bool {
		return follows() && len(enc.Active) == 1 && len(enc.Paused) == len(layers)-1
	})
	t.Logf("alice: %+v", enc)
	frames := st.VideoFramesDecoded
	poll.Within(t, browserDeadline, "bob's video to go on", func() bool {
		st = evalJS[pageStats](t, bob, `window.troupe.stats()`)
		return st.VideoFramesDecoded > frames+30
	})
}
