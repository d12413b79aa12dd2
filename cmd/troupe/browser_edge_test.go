package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/browsertest"
	"github.com/troupe-media/troupe/internal/poll"
)

// edgeServer starts a server on HTTPS (with mods) and returns it with its
// certificate.
func edgeServer(t *testing.T, mods ...func(*Config)) (*testServer, []byte) {
	t.Helper()
	s, _, certFile, _ := tlsServer(t, mods...)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return s, certPEM
}

// edgeBrowser starts a Chromium that trusts the certificate of certPEM
// besides those it trusts anyway (opts add to its command line). Start it
// after the server: it stops before it.
func edgeBrowser(t *testing.T, certPEM []byte, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	return browsertest.New(t, append(opts, browsertest.TrustCertificate(t, certPEM))...)
}

// edgeJoin opens the room's page at s with query (the link's options, ""
// for none) and joins it as identity, a publisher.
func edgeJoin(t *testing.T, browser context.Context, s *testServer, room, identity, query string) context.Context {
	t.Helper()
	tab := edgeOpen(t, browser, s, room, identity, query)
	browsertest.Click(t, tab, "join")
	browsertest.Wait(t, tab, identity+" to join", `window.troupe.state === "joined"`)
	return tab
}

// edgeOpen opens the room's page at s with query, ready to join with a
// publisher's token for identity.
func edgeOpen(t *testing.T, browser context.Context, s *testServer, room, identity, query string) context.Context {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"`+identity+`","role":"publisher"}`)["token"].(string)
	tab := browsertest.Open(t, browser, s.url+"/rooms/"+room+query)
	if err := chromedp.Do(tab, chromedp.SetValue("#token", tok)); err != nil {
		t.Fatal(err)
	}
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
	s, certPEM := edgeServer(t)
	browser := edgeBrowser(t, certPEM)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tabs := map[string]context.Context{"alice": edgeJoin(t, browser, s, "r1", "alice", ""), "bob": edgeJoin(t, browser, s, "r1", "bob", "")}
	for who, tab := range tabs {
		if got := browsertest.Eval[string](t, tab, `location.protocol + " " + new URL(window.troupe.ws.url).protocol`); got != "https: wss:" {
			t.Errorf("%s's page and socket: %s, want https: wss:", who, got)
		}
		decodes(t, tab, who)
	}
}

// selectedPair is the JavaScript of what tab's media goes over once
// connected: "relay/<protocol to the TURN server>" or "direct/<protocol>"
// for the local candidate, then the remote one's type and protocol
// ("relay/tls host/udp"); "" before.
const selectedPair = `window.troupe.pc ? window.troupe.pc.getStats().then((r) => {
	for (const s of r.values()) {
		if (s.type !== "transport" || !s.selectedCandidatePairId) continue;
		const p = r.get(s.selectedCandidatePairId), l = r.get(p.localCandidateId), c = r.get(p.remoteCandidateId);
		const local = l.candidateType === "relay" ? "relay/" + l.relayProtocol : "direct/" + l.protocol;
		return local + " " + c.candidateType + "/" + c.protocol;
	}
	return "";
}) : ""`

// relayed waits until tab decodes video and receives audio through a
// relay it reaches over one of protocols (udp, tls), and returns the TURN
// servers its peer connection was given, as JSON.
func relayed(t *testing.T, tab context.Context, who string, protocols ...string) string {
	t.Helper()
	var want []string
	for _, p := range protocols {
		want = append(want, "relay/"+p+" host/udp")
	}
	mediaOver(t, tab, who, want...)
	return browsertest.Eval[string](t, tab, `JSON.stringify(window.troupe.pc.getConfiguration().iceServers.filter((s) => [].concat(s.urls).some((u) => /^turns?:/.test(u))))`)
}

// mediaOver waits until tab decodes video and receives audio, and its
// selected candidate pair is one of want (selectedPair's). Chromium may
// first select a pair that connected sooner and move to the one it ranks
// higher once that one works too.
func mediaOver(t *testing.T, tab context.Context, who string, want ...string) {
	t.Helper()
	decodes(t, tab, who)
	var pairs []string
	poll.Within(browsertest.PageWait{TB: t, Tab: tab, More: func() string { return fmt.Sprintf("pairs %q", pairs) }}, browsertest.Deadline, who+"'s media over "+strings.Join(want, " or "), func() bool {
		got := browsertest.Eval[string](t, tab, selectedPair)
		if len(pairs) == 0 || pairs[len(pairs)-1] != got {
			pairs = append(pairs, got)
		}
		return slices.Contains(want, got)
	})
}

// turnExpiry is when the credentials of servers (relayed's JSON) expire,
// as their username says.
func turnExpiry(t *testing.T, servers string) time.Time {
	t.Helper()
	var list []webrtc.ICEServer
	if err := json.Unmarshal([]byte(servers), &list); err != nil || len(list) != 1 {
		t.Fatalf("TURN servers %s: %v", servers, err)
	}
	exp, _, ok := strings.Cut(list[0].Username, ":")
	sec, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil || list[0].Credential == "" {
		t.Fatalf("TURN credentials %+v: want <expiry>:<participant> and a password", list[0])
	}
	return time.Unix(sec, 0)
}

// gatherRelays is the JavaScript that gathers candidates in a new peer
// connection given the ICE servers of the JSON %s, relays only, and
// returns how many relay candidates it got and the errors the TURN
// servers answered.
const gatherRelays = `(async () => {
	const pc = new RTCPeerConnection({ iceServers: %s, iceTransportPolicy: "relay" });
	const out = { relays: 0, errors: [] };
	pc.onicecandidate = (e) => { if (e.candidate && e.candidate.type === "relay") out.relays++; };
	pc.onicecandidateerror = (e) => out.errors.push(e.errorCode);
	const done = new Promise((ok) => pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && ok()));
	pc.createDataChannel("probe");
	await pc.setLocalDescription();
	await done;
	pc.close();
	return out;
})()`

// gathered is what gatherRelays returns.
type gathered struct {
	Relays int   `json:"relays"`
	Errors []int `json:"errors"`
}

// TestBrowserEdgeRelay: pages whose link says ice=relay send and receive
// media through Troupe's TURN server only: over UDP, and over TLS from a
// browser whose WebRTC may use no UDP. Their credentials expire when the
// server said, are refused from then on, and a page that joins again gets
// new ones that relay its media again. One server for it all, so that the
// minute the credentials live is spent on the other checks.
func TestBrowserEdgeRelay(t *testing.T) {
	s, certPEM := edgeServer(t, func(c *Config) {
		c.TURNEnabled = true
		c.TURNCredentialTTL = time.Minute // the shortest a server takes
	})
	browser := edgeBrowser(t, certPEM)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)

	// Relayed, with TURN over UDP and over TLS both offered: Chromium
	// ranks the UDP relay higher and normally settles on it, but on a
	// loaded machine it may keep the TLS relay that connected first.
	// Either is media through the relay only; TLS alone is checked below,
	// with UDP blocked.
	anyTURN := []string{"udp", "tls"}
	before := time.Now()
	alice := edgeJoin(t, browser, s, "r1", "alice", "?ice=relay")
	after := time.Now()
	bob := edgeJoin(t, browser, s, "r1", "bob", "?ice=relay")
	aliceTURN := relayed(t, alice, "alice", anyTURN...)
	relayed(t, bob, "bob", anyTURN...)
	expires := turnExpiry(t, aliceTURN)
	if lo, hi := before.Add(time.Minute).Truncate(time.Second), after.Add(time.Minute); expires.Before(lo) || expires.After(hi) {
		t.Fatalf("alice's TURN credentials expire at %v, want a minute after she joined (%v..%v)", expires, lo, hi)
	}
	if got := browsertest.Eval[string](t, alice, `location.search`); got != "?ice=relay" {
		t.Errorf("alice's address keeps %q, want ?ice=relay", got)
	}

	// An ICE restart gathers anew, as Chromium does after a network
	// change: a relay per TURN URL and network again, before the old ones
	// go. The TURN server lets it have them all.
	pairID := `window.troupe.pc.getStats().then((r) => [...r.values()].filter((s) => s.type === "transport").map((s) => s.selectedCandidatePairId || "").join())`
	first := browsertest.Eval[string](t, alice, pairID)
	browsertest.Eval[bool](t, alice, `(() => { window.troupe.pc.restartIce(); return true; })()`)
	browsertest.Wait(t, alice, "alice's media on a pair of the ICE restart", fmt.Sprintf(`%s.then((id) => id !== "" && id !== %q)`, pairID, first))
	relayed(t, alice, "alice", anyTURN...)
	if got := s.metric(`troupe_turn_refused_total{reason="quota"}`); got != 0 {
		t.Errorf("the TURN server refused %v of the relays an ICE restart asked for", got)
	}
	browsertest.Click(t, alice, "leave")
	browsertest.Click(t, bob, "leave")

	// Over TLS, from a browser whose WebRTC uses no UDP: the relay's leg
	// to the media server is UDP, on the server's side.
	noUDP := edgeBrowser(t, certPEM, browsertest.UDPBlocked())
	carol := edgeJoin(t, noUDP, s, "r1", "carol", "?ice=relay")
	dave := edgeJoin(t, noUDP, s, "r1", "dave", "?ice=relay")
	relayed(t, carol, "carol", "tls")
	relayed(t, dave, "dave", "tls")
	browsertest.Click(t, dave, "leave")

	// Alice's credentials expire: Chromium gets no relay with them.
	poll.Within(t, 2*time.Minute, "alice's TURN credentials to expire", func() bool { return time.Now().After(expires) })
	refusedBefore := s.metric(`troupe_turn_refused_total{reason="expired"}`)
	got := browsertest.Eval[gathered](t, alice, fmt.Sprintf(gatherRelays, aliceTURN))
	if got.Relays != 0 || !slices.Contains(got.Errors, 401) {
		t.Fatalf("gathering with expired credentials: %+v, want no relay and 401", got)
	}
	if s.metric(`troupe_turn_refused_total{reason="expired"}`) <= refusedBefore {
		t.Error("the TURN server did not count the expired credentials it refused")
	}

	// Joining again gets new ones, which relay alice's media again.
	browsertest.Click(t, alice, "join")
	browsertest.Wait(t, alice, "alice to join again", `window.troupe.state === "joined"`)
	rejoined := time.Now()
	if next := turnExpiry(t, relayed(t, alice, "alice", anyTURN...)); !next.After(rejoined) || next.Before(expires.Add(time.Minute)) {
		t.Fatalf("alice's new TURN credentials expire at %v, want a minute after she joined again (%v)", next, rejoined)
	}
}

// TestBrowserEdgeRelayWithoutTURN: a page whose link says ice=relay, on a
// server with no TURN relay to use, says so and leaves rather than fail
// to connect again and again; a link with another ice= value is refused
// before it joins anything.
func TestBrowserEdgeRelayWithoutTURN(t *testing.T) {
	s, certPEM := edgeServer(t)
	browser := edgeBrowser(t, certPEM)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)

	tab := edgeOpen(t, browser, s, "r1", "alice", "?ice=relay")
	browsertest.WatchStates(t, tab)
	browsertest.Click(t, tab, "join")
	browsertest.Wait(t, tab, "the page to give up", `window.troupe.state === "closed" && /offers no TURN relay/.test(document.getElementById("notice").textContent)`)
	if seen := browsertest.SeenStates(t, tab); slices.ContainsFunc(seen, func(s string) bool { return strings.Contains(s, "reconnecting") }) {
		t.Errorf("the page tried again: %q", seen)
	}
	poll.Until(t, "alice to leave the room", func() bool { return len(s.mustList(200, "GET", "/api/v1/rooms/r1/participants")) == 0 })

	bad := edgeOpen(t, browser, s, "r1", "bob", "?ice=direct")
	browsertest.Wait(t, bad, "the page to refuse ice=direct", `/ice=direct is not an option/.test(document.getElementById("notice").textContent)`)
	browsertest.Click(t, bad, "join")
	if got := browsertest.Eval[string](t, bad, `window.troupe.state + " " + String(window.troupe.ws)`); got != "idle null" {
		t.Errorf("the page with ice=direct, after Join: %s, want idle with no socket", got)
	}
}

// TestBrowserEdgeNoUDP: pages in a browser whose WebRTC may use no UDP
// connect to the media server's ICE TCP port, and decode each other's
// camera.
func TestBrowserEdgeNoUDP(t *testing.T) {
	s, certPEM := edgeServer(t)
	browser := edgeBrowser(t, certPEM, browsertest.UDPBlocked())
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tabs := map[string]context.Context{"alice": edgeJoin(t, browser, s, "r1", "alice", ""), "bob": edgeJoin(t, browser, s, "r1", "bob", "")}
	for who, tab := range tabs {
		mediaOver(t, tab, who, "direct/tcp host/tcp")
	}
}

// TestBrowserEdgeClusterRelay: in a two-node cluster, pages that join
// through the node that does not own the room, relay-only, get the owner's
// TURN server (whose relays reach the owner's media port), and decode each
// other's camera through it; the other node's TURN server relays nothing.
func TestBrowserEdgeClusterRelay(t *testing.T) {
	nodes := turnCluster(t)
	a, b := nodes[0], nodes[1]
	browser := browsertest.New(t) // after the nodes: it stops before them
	createOn(t, a, "r1")
	ownersTURN := turnServers(linkICEServers(t, whepOptions(t, a, "r1", viewerToken(a, "r1"))))
	if len(ownersTURN) != 1 {
		t.Fatalf("the owner's TURN servers: %+v", ownersTURN)
	}
	tabs := map[string]context.Context{"alice": edgeJoin(t, browser, b, "r1", "alice", "?ice=relay"), "bob": edgeJoin(t, browser, b, "r1", "bob", "?ice=relay")}
	for who, tab := range tabs {
		var servers []webrtc.ICEServer
		if err := json.Unmarshal([]byte(relayed(t, tab, who, "udp")), &servers); err != nil || len(servers) != 1 || servers[0].URLs[0] != ownersTURN[0].URLs[0] {
			t.Fatalf("%s's TURN servers %+v (%v), want the owner's %s", who, servers, err, ownersTURN[0].URLs[0])
		}
	}
	if got := b.metric("troupe_turn_allocations"); got != 0 {
		t.Errorf("node-b's TURN server holds %v relays, want none", got)
	}
	if got := a.metric("troupe_turn_allocations"); got < 2 {
		t.Errorf("node-a's TURN server holds %v relays, want alice's and bob's", got)
	}
}
