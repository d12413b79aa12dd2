package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// ownerHints reads troupe_room_owner_hints_total from a server's /metrics.
func ownerHints(t *testing.T, s *testServer) int {
	t.Helper()
	return int(s.metric("troupe_room_owner_hints_total"))
}

// A node that heard which node owns a room forwards its requests there
// without a claim of its own: the hint counts them, and it never runs the
// room.
func TestOwnerHintForwardsWithoutClaim(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	createOn(t, a, "r1")
	poll.Until(t, "node-b to forward from its hint", func() bool {
		if got := b.mustDo(200, "GET", "/api/v1/rooms/r1", ""); got["node_id"] != "node-a" {
			t.Fatalf("r1 through node-b: node_id %v, want node-a", got["node_id"])
		}
		return ownerHints(t, b) > 0
	})
	for range 3 {
		b.mustDo(200, "GET", "/api/v1/rooms/r1", "")
	}
	if got := ownerHints(t, b); got < 4 {
		t.Errorf("node-b forwarded %d requests from its hint, want at least 4", got)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
	if got := ownerHints(t, a); got != 0 {
		t.Errorf("the owner counted %d hints, want 0", got)
	}
}

// sendForwarded sends an admin request to s as if another node had
// forwarded it already.
func sendForwarded(t *testing.T, s *testServer, method, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	s.forwardedBy(req.Header, "node-x", method, path)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A request that claims to be forwarded by a node, without the signature
// of the cluster's key, is an outside request: node-b forwards it to the
// room's owner rather than answer it as the owner's forwarder would.
func TestForgedForwardIsAnOutsideRequest(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	createOn(t, a, "r1")
	otherKey := http.Header{}
	httpapi.SignForward(otherKey, auth.Key{ID: b.key.ID, Secret: strings.Repeat("x", 32)}, "node-a", "GET", "/api/v1/rooms/r1", time.Now())
	for i, forged := range []http.Header{
		{httpapi.ForwardedByHeader: {"node-a"}},
		{httpapi.ForwardedByHeader: {"node-a"}, httpapi.ForwardAuthHeader: {"1765000000.AAAA"}},
		// Signed with a key that is not the cluster's.
		otherKey,
	} {
		req, err := http.NewRequest("GET", b.url+"/api/v1/rooms/r1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = forged
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get(httpapi.OwnerHeader) != "" {
			t.Fatalf("GET on node-b claiming to be forwarded (forgery %d): %d, %s %q, want 200 from node-a",
				i, resp.StatusCode, httpapi.OwnerHeader, resp.Header.Get(httpapi.OwnerHeader))
		}
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
}

// A node that receives a forwarded request for a room another node owns
// names that owner, from etcd, for the forwarder to retry there.
func TestOwnerHintForwardedRequestNamesTheOwner(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	createOn(t, a, "r1")
	resp := sendForwarded(t, b, "GET", "/api/v1/rooms/r1")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(httpapi.OwnerHeader) != "node-a" {
		t.Fatalf("forwarded GET on node-b: %d, %s %q, want 503 naming node-a", resp.StatusCode, httpapi.OwnerHeader, resp.Header.Get(httpapi.OwnerHeader))
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
	// The answer of a forwarded request reaches the client without it.
	resp2, err := b.client.Do(func() *http.Request {
		r, _ := http.NewRequest("GET", b.url+"/api/v1/rooms/r1", nil)
		r.Header.Set("Authorization", "Bearer "+b.token)
		return r
	}())
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK || resp2.Header.Get(httpapi.OwnerHeader) != "" {
		t.Fatalf("GET through node-b: %d, %s %q", resp2.StatusCode, httpapi.OwnerHeader, resp2.Header.Get(httpapi.OwnerHeader))
	}
}

// A forward to a node that no longer owns the room (it released it just
// before the request came, and another node claimed it) is sent once more,
// to the owner that node names, and gets the owner's answer. The node
// forwarded to first stands for a node whose owner key the forwarder's
// hint still had: it is an HTTP server that owns r1 until a request comes.
func TestOwnerHintStaleOwnerRetried(t *testing.T) {
	endpoint, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	hits := staleOwner(t, endpoint, a, func(w http.ResponseWriter, r *http.Request, handOver func() string) {
		w.Header().Set(httpapi.OwnerHeader, handOver())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "room_unavailable"}})
	})

	got := b.mustDo(200, "GET", "/api/v1/rooms/r1", "")
	if got["id"] != "r1" || got["node_id"] != "node-a" {
		t.Fatalf("r1 through node-b: %v, want it from node-a", got)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the old owner got %d requests, want 1", n)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
}

// A room its owner released (passivated) is claimed again by the node a
// request reaches next, whatever that node's hint said a moment before.
func TestOwnerHintAfterRelease(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	cfgA := clusterConfig(t, endpoint, "node-a", secret)
	cfgA.PassivateAfter = 200 * time.Millisecond
	a := startServer(t, cfgA)
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))
	store := plainStore(t, endpoint)

	createOn(t, a, "r1")
	poll.Until(t, "node-b to forward r1 from its hint", func() bool {
		b.mustDo(200, "GET", "/api/v1/rooms/r1", "")
		return ownerHints(t, b) > 0
	})
	poll.Until(t, "r1 to passivate and be owned by no node", func() bool {
		owner, err := store.Owner(t.Context(), "r1")
		return err == nil && owner == "" && roomActors(t, a) == "0"
	})
	hints := ownerHints(t, b)
	got := b.mustDo(200, "GET", "/api/v1/rooms/r1", "")
	owner, err := store.Owner(t.Context(), "r1")
	if err != nil || owner == "" || got["node_id"] != owner {
		t.Fatalf("r1 through node-b after its release: node_id %v, owner %q %v", got["node_id"], owner, err)
	}
	if n := ownerHints(t, b); n != hints {
		t.Errorf("node-b counted %d more hints for a room no node owned", n-hints)
	}
}

// staleOwner stands an HTTP server in for node-old, which owns r1 until a
// call forwarded by node-b reaches it (as a node whose owner key another
// node's hint still has), and returns the count of the calls it got.
// serve answers each call; handOver, called where node-old would let the
// room go, releases r1 and has node-a claim it, as a forwarded create does,
// and returns the owner etcd names then.
func staleOwner(t *testing.T, endpoint string, a *testServer, serve func(w http.ResponseWriter, r *http.Request, handOver func() string)) *atomic.Int32 {
	t.Helper()
	stale := nodeStore(t, endpoint, "node-old", 5*time.Second)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get(httpapi.ForwardedByHeader) != "node-b" {
			t.Errorf("a call from %q, want node-b", r.Header.Get(httpapi.ForwardedByHeader))
		}
		serve(w, r, func() string {
			if err := stale.Release(r.Context(), "r1"); err != nil {
				t.Errorf("release r1: %v", err)
			}
			if err := createForwarded(r.Context(), a, "r1", "node-old"); err != nil {
				t.Error(err)
			}
			owner, err := stale.Owner(r.Context(), "r1")
			if err != nil {
				t.Errorf("owner of r1: %v", err)
			}
			return owner
		})
	}))
	t.Cleanup(srv.Close)
	standIn(t, stale, "node-old", srv.URL, "r1")
	return &hits
}

// createForwarded creates room id on s as a request forwarded by node from
// would, so that s claims it rather than place it; for a handler that
// stands for a node, which must not stop the test.
func createForwarded(ctx context.Context, s *testServer, id, from string) error {
	create, err := http.NewRequestWithContext(ctx, "POST", s.url+"/api/v1/rooms", strings.NewReader(`{"id":"`+id+`","name":"`+id+`"}`))
	if err != nil {
		return err
	}
	create.Header.Set("Authorization", "Bearer "+s.token)
	create.Header.Set("Content-Type", "application/json")
	s.forwardedBy(create.Header, from, "POST", "/api/v1/rooms")
	resp, err := s.client.Do(create)
	if err != nil {
		return fmt.Errorf("create %s on %s: %w", id, s.url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create %s on %s: %d", id, s.url, resp.StatusCode)
	}
	return nil
}

// A node that stops without releasing its rooms and starts again under the
// same id holds a new lease: the rooms the others heard it owns are not its
// own until their old owner keys expire, and then any node serves them.
func TestOwnerHintNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node as a child process")
	}
	endpoint, secret := etcdStart(t), strings.Repeat("s", 32)
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))
	cfgA := clusterConfig(t, endpoint, "node-a", secret)
	a, cmd := startChildNode(t, cfgA, b.token)

	createOn(t, a, "r1")
	poll.Until(t, "node-b to forward r1 from its hint", func() bool {
		b.mustDo(200, "GET", "/api/v1/rooms/r1", "")
		return ownerHints(t, b) > 0
	})
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	a2, _ := startChildNode(t, cfgA, b.token)
	for _, via := range []*testServer{b, a2} {
		poll.Until(t, "r1 to be served through a node again", func() bool {
			status, _ := via.do("GET", "/api/v1/rooms/r1", "")
			return status == http.StatusOK
		})
	}
	if got := b.mustDo(200, "GET", "/api/v1/rooms/r1", ""); got["node_id"] == nil {
		t.Fatalf("r1 after the restart has no owner: %v", got)
	}
}

// A request forwarded to an owner that takes it and never answers (a
// frozen process: its kernel still accepts) gets 503 room_unavailable with
// Retry-After once the forward's timeout passes, and a join relayed there
// an error with retry_after_ms and close 4503, rather than hang.
func TestForwardToFrozenOwner(t *testing.T) {
	endpoint, nodes := startCluster(t, "node-b")
	b := nodes[0]
	frozen := nodeStore(t, endpoint, "node-frozen", 30*time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/rtc" {
			<-r.Context().Done() // the forwarder gave up
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		for { // takes the join and answers nothing, until the relay ends
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	standIn(t, frozen, "node-frozen", srv.URL, "r1")
	// A bound against a hang: the two requests below wait out the
	// forward's timeout each.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, "GET", b.url+"/api/v1/rooms/r1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("GET r1 through node-b: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "room_unavailable") {
		t.Fatalf("GET r1 through node-b: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	tok, err := auth.Mint(auth.Key{ID: "TKcluster", Secret: strings.Repeat("s", 32)},
		auth.JoinClaims(time.Now(), time.Hour, "r1", "alice", "Alice", auth.RoleSubscriber))
	if err != nil {
		t.Fatal(err)
	}
	ws, msg := b.join(ctx, tok, nil)
	if !strings.Contains(string(msg), `"code":"room_unavailable"`) || !strings.Contains(string(msg), `"retry_after_ms":`) {
		t.Fatalf("a join through node-b relayed to a frozen owner: %s", msg)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != 4503 {
		t.Fatalf("close of a join relayed to a frozen owner: %v, want 4503", err)
	}
}
