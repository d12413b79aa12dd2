package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// A WHEP viewer's settings reach the node that owns its room through a
// node that does not: those of its POST's query, checked before anything
// joins, and the JSON PATCH of its session URL, which only the owner has.
func TestClusterForwardsWHEPSettings(t *testing.T) {
	a, b, token, pc := clusterViewer(t)
	offer := gatheredOffer(t, pc)
	req := func(method, path, contentType, body string) *http.Response {
		t.Helper()
		return whipRequestOf(t, b, token, method, path, contentType, body)
	}

	if resp := req("POST", "/whep/r1?width=320", "application/sdp", offer); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("WHEP with a width alone through node-b: %d, want 422", resp.StatusCode)
	}
	if got := participantIdentities(t, a, "r1"); len(got) != 0 {
		t.Fatalf("participants on node-a after a refused viewer: %v", got)
	}
	resp := req("POST", "/whep/r1?width=320&height=180", "application/sdp", offer)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "/whep/r1/") {
		t.Fatalf("WHEP through node-b: %d, Location %q", resp.StatusCode, loc)
	}
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"viewer"}) {
		t.Fatalf("participants on node-a: %v, want viewer", got)
	}
	// node-b has no such session: a 204 is node-a's, and so is the 422
	// on the body it was sent.
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"width":640,"height":360,"max_quality":"720p"}`, http.StatusNoContent},
		{`{"width":0,"height":360}`, http.StatusUnprocessableEntity},
		{`{"paused":true}`, http.StatusNoContent},
	} {
		if resp := req("PATCH", loc, "application/json", c.body); resp.StatusCode != c.want {
			t.Fatalf("PATCH %s through node-b: %d, want %d", c.body, resp.StatusCode, c.want)
		}
	}
	if resp := req("DELETE", loc, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s through node-b: %d", loc, resp.StatusCode)
	}
	if resp := req("PATCH", loc, "application/json", `{"width":640,"height":360}`); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("PATCH of a session gone, through node-b: %d, want 404", resp.StatusCode)
	}
}

// clusterViewer starts two nodes, creates room r1 through node-a, and
// returns both nodes, a viewer's join token minted through node-b, and
// the viewer's peer connection, a video section to receive.
func clusterViewer(t *testing.T) (a, b *testServer, token string, pc *webrtc.PeerConnection) {
	t.Helper()
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b = nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	tok := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"viewer","role":"subscriber"}`)
	token, _ = tok["token"].(string)
	pc = loopbackPeer(t)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	return a, b, token, pc
}
