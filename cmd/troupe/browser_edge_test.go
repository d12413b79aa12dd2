package main

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/troupe-media/troupe/internal/browsertest"
)

// edgeBrowser starts a server on HTTPS (with mods) and a Chromium that
// trusts its certificate and nothing more (opts add to its command line).
func edgeBrowser(t *testing.T, mods []func(*Config), opts ...chromedp.ExecAllocatorOption) (*testServer, context.Context) {
	t.Helper()
	s, _, certFile, _ := tlsServer(t, mods...)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	browser := browsertest.New(t, append(opts, browsertest.TrustCertificate(t, certPEM))...) // after the server: it stops before it
	return s, browser
}

// edgeJoin opens the room's page at s with query (the link's options, ""
// for none) and joins it as identity, a publisher.
func edgeJoin(t *testing.T, browser context.Context, s *testServer, room, identity, query string) context.Context {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"`+identity+`","role":"publisher"}`)["token"].(string)
	tab := browsertest.Open(t, browser, s.url+"/rooms/"+room+query)
	if err := chromedp.Do(tab, chromedp.SetValue("#token", tok)); err != nil {
		t.Fatal(err)
	}
	browsertest.Click(t, tab, "join")
	browsertest.Wait(t, tab, identity+" to join", `window.troupe.state === "joined"`)
	return tab
}

// decodes waits until tab decodes video and receives audio.
func decodes(t *testing.T, tab context.Context, who string) {
	t.Helper()
	browsertest.Wait(t, tab, who+"'s decoded video", `window.troupe.stats().then((s) => s.videoFramesDecoded > 0 && s.audioPacketsReceived > 0)`)
}

// TestBrowserEdgeHTTPS: pages served over HTTPS by Troupe itself join over
// WSS, publish their camera, and decode each other's.
func TestBrowserEdgeHTTPS(t *testing.T) {
	s, browser := edgeBrowser(t, nil)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tabs := map[string]context.Context{"alice": edgeJoin(t, browser, s, "r1", "alice", ""), "bob": edgeJoin(t, browser, s, "r1", "bob", "")}
	for who, tab := range tabs {
		if got := browsertest.Eval[string](t, tab, `location.protocol + " " + new URL(window.troupe.ws.url).protocol`); got != "https: wss:" {
			t.Errorf("%s's page and socket: %s, want https: wss:", who, got)
		}
		decodes(t, tab, who)
	}
}
