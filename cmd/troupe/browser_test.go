package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/internal/browsertest"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// TestBrowserClusterNonOwner: in a two-node cluster, a page served by the
// node that does not own the room joins through it (its socket relayed to
// the owner) and decodes the video of a page that joined the owner
// directly, and the other way round; the node in between runs no room.
func TestBrowserClusterNonOwner(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	browser := browsertest.New(t) // after the nodes: it stops before them
	a, b := nodes[0], nodes[1]
	createOn(t, a, "r1")
	join := func(s *testServer, identity string) context.Context {
		tok := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"`+identity+`","role":"publisher"}`)["token"].(string)
		tab := browsertest.Open(t, browser, s.url+"/rooms/r1")
		if err := chromedp.Do(tab, chromedp.SetValue("#token", tok)); err != nil {
			t.Fatal(err)
		}
		browsertest.Click(t, tab, "join")
		browsertest.Wait(t, tab, identity+" to join through "+s.url, `window.troupe.state === "joined"`)
		return tab
	}
	tabs := map[string]context.Context{"alice (through node-b)": join(b, "alice"), "bob (on node-a)": join(a, "bob")}
	for name, tab := range tabs {
		browsertest.Wait(t, tab, name+"'s decoded video", `window.troupe.stats().then((s) => s.videoFramesDecoded > 0 && s.audioPacketsReceived > 0)`)
	}
	if got := participantIdentities(t, b, "r1"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Errorf("participants of r1: %v", got)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0: the room is node-a's", got)
	}
}

// TestBrowserClusterFailover: a page joined through node-b to a room that
// node-a owns; node-a dies. The page shows that it is reconnecting, joins
// again through node-b once node-b took the room over, and receives the
// video of a publisher that came back too (synthetic packets: received,
// not decodable).
func TestBrowserClusterFailover(t *testing.T) {
	a, b, cmd := childOwnedRoom(t)
	browser := browsertest.New(t)
	token := func(identity, role string) string {
		return b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"`+identity+`","role":"`+role+`"}`)["token"].(string)
	}
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	reconnectingPublisher(t, t.Context(), client.Config{URL: a.url, Token: token("pub", "publisher"), API: api, Logger: slog.New(slog.DiscardHandler)}, b.url)

	tab := browsertest.Open(t, browser, b.url+"/rooms/r1")
	if err := chromedp.Do(tab, chromedp.SetValue("#token", token("viewer", "subscriber"))); err != nil {
		t.Fatal(err)
	}
	browsertest.Click(t, tab, "join")
	browsertest.Wait(t, tab, "the page's video", `window.troupe.state === "joined" && window.troupe.stats().then((s) => s.videoPacketsReceived > 0)`)
	first := browsertest.Eval[string](t, tab, `window.troupe.participantId`)
	browsertest.WatchStates(t, tab)

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	browsertest.Wait(t, tab, "the page to join again and receive video",
		`window.troupe.state === "joined" && window.troupe.reconnects === 1 && window.troupe.participantId !== "`+first+`" && window.troupe.stats().then((s) => s.videoPacketsReceived > 0)`)
	if seen := browsertest.SeenStates(t, tab); !strings.Contains(strings.Join(seen, "\n"), "reconnecting") {
		t.Errorf("the page never showed reconnecting: %q", seen)
	}
	if got := roomActors(t, b); got != "1" {
		t.Errorf("node-b runs %s room actors, want r1", got)
	}
}
