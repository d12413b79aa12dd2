package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/browsertest"
	"github.com/troupe-media/troupe/internal/poll"
)

// waitPageMedia waits until tab decodes video, and receives audio if
// audio, on its current peer connection.
func waitPageMedia(t *testing.T, tab context.Context, what string, audio bool) {
	t.Helper()
	waitPage(t, tab, what, fmt.Sprintf(`window.troupe.stats().then((s) => s.videoFramesDecoded > 0 && (!%v || s.audioPacketsReceived > 0))`, audio))
}

// TestBrowserReconnect: the server drops its rooms (as a cluster node that
// lost its lease does); both pages show that they are reconnecting, join
// again with new peer connections, and decode each other's media again; a
// microphone muted before stays muted. Then a kicked page says so and does
// not come back.
func TestBrowserReconnect(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	browser := newBrowser(t)

	names := []string{"alice", "bob"}
	tabs := make([]context.Context, len(names))
	ids := make([]string, len(names))
	for i, name := range names {
		tabs[i] = openPage(t, browser, s.srv.URL+"/rooms/again?name="+name)
		clickJS(t, tabs[i], "join")
		waitPage(t, tabs[i], name+" to join", `window.troupe.state === "joined"`)
	}
	for i, tab := range tabs {
		waitPageMedia(t, tab, names[i]+"'s media", true)
		ids[i] = evalJS[string](t, tab, `window.troupe.participantId`)
		browsertest.WatchStates(t, tab)
	}
	clickJS(t, tabs[0], "mute-audio")
	waitPage(t, tabs[1], "alice's mute on bob's page", `document.querySelector(".tile:not([data-participant='`+ids[1]+`']) .label").textContent.includes("audio muted")`)

	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if err := s.rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	for i, tab := range tabs {
		waitPage(t, tab, names[i]+" to join again", fmt.Sprintf(`window.troupe.state === "joined" && window.troupe.reconnects === 1 && window.troupe.participantId !== %q`, ids[i]))
		// alice's microphone is muted: bob gets her video only.
		waitPageMedia(t, tab, names[i]+"'s media after the reconnection", i == 0)
		seen := browsertest.SeenStates(t, tab)
		if !strings.Contains(strings.Join(seen, "\n"), "reconnecting") {
			t.Errorf("%s's page never showed reconnecting: %q", names[i], seen)
		}
		if n := notice(t, tab); n.Fault || n.Text != "Reconnected." {
			t.Errorf("%s's notice after the reconnection: %+v", names[i], n)
		}
	}
	alice := evalJS[string](t, tabs[0], `window.troupe.participantId`)
	waitPage(t, tabs[1], "alice's mute kept after the reconnection",
		`document.querySelector(".tile[data-participant='`+alice+`'] .label").textContent.includes("audio muted")`)
	if got := evalJS[string](t, tabs[0], `document.getElementById("mute-audio").textContent`); got != "Unmute mic" {
		t.Errorf("alice's mic button says %q after the reconnection", got)
	}

	bob := evalJS[string](t, tabs[1], `window.troupe.participantId`)
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/again/participants/"+bob, ""), http.StatusNoContent)
	waitPage(t, tabs[1], "bob's page to say he was removed", `window.troupe.state === "left"`)
	if n := notice(t, tabs[1]); n.Fault || !strings.Contains(n.Text, "removed you") {
		t.Errorf("bob's notice after the kick: %+v", n)
	}
	if got := evalJS[int](t, tabs[1], `window.troupe.reconnects`); got != 1 {
		t.Errorf("bob's page reconnected %d times, want only the one after the drop", got)
	}
	if n := len(s.participants(t, "again")); n != 1 {
		t.Errorf("%d participants after the kick, want alice alone", n)
	}
}
