package main

import (
	"context"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/internal/browsertest"
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
