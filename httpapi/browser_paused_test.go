package httpapi

import (
	"context"
	"fmt"
	"testing"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// tilePaused is what the tile of participant id on a page shows of its
// pause: "" when it is not marked paused, or the mark is not shown.
func tilePaused(t *testing.T, tab context.Context, id string) string {
	t.Helper()
	return evalJS[string](t, tab, fmt.Sprintf(`(() => {
		const tile = document.querySelector('.tile[data-participant=%q]');
		const mark = tile && tile.querySelector(".paused");
		return tile && tile.classList.contains("paused") && getComputedStyle(mark).display !== "none" ? mark.textContent : "";
	})()`, id))
}

// cameraRoom is a media stack with a room where alice's page publishes
// her camera in the page's three layers.
type cameraRoom struct {
	s       *stack
	browser context.Context
	aliceID string // her participant id
	camera  string // her camera's track id
	layers  []restLayer
}

// startCameraRoom starts a cameraRoom with the room id room; the test
// checks for leaks when it ends.
func startCameraRoom(t *testing.T, room string) cameraRoom {
	t.Helper()
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, fmt.Sprintf(`{"id":%q,"name":"Camera"}`, room))
	browser := newBrowser(t)
	alice := openPage(t, browser, s.srv.URL+"/rooms/"+room+"?token="+s.joinToken(t, room, "alice", auth.RolePublisher))
	clickJS(t, alice, "join")
	waitPage(t, alice, "alice to join", `window.troupe.state === "joined"`)
	r := cameraRoom{s: s, browser: browser, aliceID: evalJS[string](t, alice, `window.troupe.participantId`)}
	r.camera, r.layers = s.waitCamera(t, room, "alice", pageLayers)
	return r
}

// TestBrowserPausedTile: a viewer's page pauses the camera it receives
// (track-settings with paused, as a page would for a tile out of view);
// the server answers track-paused and the tile shows "Paused" while the
// sound goes on; resumed, the tile shows video again.
func TestBrowserPausedTile(t *testing.T) {
	r := startCameraRoom(t, "pause")
	s, aliceID, camera := r.s, r.aliceID, r.camera

	bob := openPage(t, r.browser, s.srv.URL+"/rooms/pause?token="+s.joinToken(t, "pause", "bob", auth.RoleSubscriber))
	clickJS(t, bob, "join")
	waitPageMedia(t, bob, "bob's video and audio", true)

	settings := func(paused bool) {
		evalJS[bool](t, bob, fmt.Sprintf(`(() => { window.troupe.ws.send(JSON.stringify({type: "track-settings", track_id: %q, paused: %v})); return true; })()`, camera, paused))
	}
	settings(true)
	poll.Within(pageWait{TB: t, Tab: bob}, browserDeadline, "alice's tile paused on bob's page", func() bool {
		return tilePaused(t, bob, aliceID) == "Paused"
	})
	poll.Within(t, browserDeadline, "the REST list to say bob has alice's camera paused", func() bool {
		return s.pausedFor(t, "pause", "bob", camera, "subscriber")
	})
	audio := evalJS[pageStats](t, bob, `window.troupe.stats()`).AudioPacketsReceived
	poll.Within(t, browserDeadline, "alice's sound to go on while her camera is paused", func() bool {
		return evalJS[pageStats](t, bob, `window.troupe.stats()`).AudioPacketsReceived > audio+50
	})
	if got := tilePaused(t, bob, aliceID); got != "Paused" {
		t.Fatalf("alice's tile on bob's page says %q while paused", got)
	}

	settings(false)
	poll.Within(pageWait{TB: t, Tab: bob}, browserDeadline, "alice's tile resumed on bob's page", func() bool {
		return tilePaused(t, bob, aliceID) == ""
	})
	frames := evalJS[pageStats](t, bob, `window.troupe.stats()`).VideoFramesDecoded
	poll.Within(t, browserDeadline, "bob to decode alice's camera again", func() bool {
		return evalJS[pageStats](t, bob, `window.troupe.stats()`).VideoFramesDecoded > frames+10
	})
}
