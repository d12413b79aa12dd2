package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
)

// etcdStart starts an etcd for the test and returns its client URL.
func etcdStart(t *testing.T) string {
	endpoint, _ := etcdtest.Start(t)
	return endpoint
}

func clusterConfig(t *testing.T, endpoint, nodeID, secret string) Config {
	cfg := testConfig(t.TempDir())
	cfg.EtcdEndpoints = stringList{endpoint}
	cfg.NodeID = nodeID
	cfg.APIKey, cfg.APISecret = "TKcluster", secret
	return cfg
}

// Two nodes on one etcd list each other; a third with another API secret,
// or another API key id, refuses to start, saying why, and changes nothing;
// as a process it exits with status 1.
func TestClusterNodes(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	a := startServer(t, clusterConfig(t, endpoint, "node-a", secret))
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))

	for _, s := range []*testServer{a, b} {
		// A node learns of another through a watch.
		poll.Until(t, "the nodes to see each other", func() bool { return len(listNodes(t, s)) == 2 })
		body := s.mustDo(200, "GET", "/api/v1/cluster/nodes", "")
		nodes, _ := body["nodes"].([]any)
		var ids, urls []string
		for _, n := range nodes {
			m := n.(map[string]any)
			ids = append(ids, m["id"].(string))
			urls = append(urls, m["advertise_url"].(string))
			if _, err := time.Parse(time.RFC3339Nano, m["started_at"].(string)); err != nil {
				t.Errorf("started_at: %v", err)
			}
		}
		if !slices.Equal(ids, []string{"node-a", "node-b"}) || !slices.Equal(urls, []string{a.url, b.url}) {
			t.Fatalf("nodes seen from %s: %v at %v", s.url, ids, urls)
		}
	}

	// Rooms are written to etcd by the node that claimed them.
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	if got := b.mustDo(200, "GET", "/api/v1/rooms", ""); got["total"] != 1.0 {
		t.Fatalf("rooms listed by node-b: %v", got)
	}

	// A node whose key pair differs from the cluster's, by its secret or by
	// its key id, refuses to start and leaves the cluster as it was: no
	// record of its own, and the cluster's key unchanged for the next node.
	for _, c := range []struct{ what, id, secret string }{
		{"another secret", "TKcluster", strings.Repeat("x", 32)},
		{"another key id", "TKother", secret},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := clusterConfig(t, endpoint, "node-c", c.secret)
		cfg.APIKey = c.id
		_, err = NewServer(cfg, ln, io.Discard, io.Discard)
		if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "every node must share them") ||
			!strings.Contains(err.Error(), "--api-key "+c.id) {
			t.Fatalf("a node with %s: %v, want ErrKeyMismatch naming --api-key %s", c.what, err, c.id)
		}
		if strings.Contains(err.Error(), c.secret) {
			t.Fatalf("a node with %s: the error shows the secret: %v", c.what, err)
		}
		if got := listNodes(t, a); len(got) != 2 {
			t.Fatalf("nodes after a node with %s was refused: %v", c.what, got)
		}
	}
	// So does the troupe process an operator starts: exit status 1 and one
	// line that says why, without the secret.
	other := strings.Repeat("o", 32)
	status, stdout, stderr := runBinary(t, "serve", "--etcd-endpoints", endpoint, "--node-id", "node-d",
		"--api-key", "TKother", "--api-secret", other, "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--log-level", "error")
	if status != exitFailure || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "troupe: ") ||
		!strings.Contains(stderr, "every node must share them") || strings.Contains(stderr, other) || stdout != "" {
		t.Errorf("troupe serve with another key pair: exit status %d, stderr %q, stdout %q; want %d and one line saying why",
			status, stderr, stdout, exitFailure)
	}

	c := startServer(t, clusterConfig(t, endpoint, "node-c", secret))
	poll.Until(t, "node-c, with the cluster's key pair, to join", func() bool { return len(listNodes(t, c)) == 3 })
}

// A single node lists itself.
func TestSingleNodeListsItself(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NodeID = "solo"
	s := startServer(t, cfg)
	body := s.mustDo(200, "GET", "/api/v1/cluster/nodes", "")
	nodes, _ := body["nodes"].([]any)
	if len(nodes) != 1 || nodes[0].(map[string]any)["id"] != "solo" || nodes[0].(map[string]any)["advertise_url"] != s.url {
		t.Fatalf("nodes: %v", body)
	}
}

// roomActors reads troupe_room_actors from a server's /metrics.
func roomActors(t *testing.T, s *testServer) string {
	t.Helper()
	return strconv.FormatFloat(s.metric("troupe_room_actors"), 'f', -1, 64)
}

// A room runs on the node that claimed it: another node never runs it. When the owner loses its lease it stops its rooms at once and
// registers again, and the other node can then claim the room.
func TestClusterLeaseLossStopsRooms(t *testing.T) {
	endpoint, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	if got := roomActors(t, a); got != "1" {
		t.Fatalf("node-a runs %s room actors, want 1", got)
	}
	if status, _ := doForwarded(t, b, "GET", "/api/v1/rooms/r1/participants"); status != http.StatusServiceUnavailable {
		t.Fatalf("node-b answered %d for node-a's room, want 503", status)
	}

	// etcd expires node-a's lease: revoke it as etcd would.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: poll.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	owner, err := cli.Get(t.Context(), "troupe/owner/r1")
	if err != nil || len(owner.Kvs) != 1 || string(owner.Kvs[0].Value) != "node-a" {
		t.Fatalf("owner of r1: %v %v", owner, err)
	}
	if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(owner.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node-a to stop its rooms", func() bool { return roomActors(t, a) == "0" })
	poll.Until(t, "node-a to register again", func() bool {
		body := b.mustDo(200, "GET", "/api/v1/cluster/nodes", "")
		nodes, _ := body["nodes"].([]any)
		return len(nodes) == 2
	})
	b.mustDo(200, "GET", "/api/v1/rooms/r1/participants", "")
	if got := roomActors(t, b); got != "1" {
		t.Errorf("node-b runs %s room actors after the takeover, want 1", got)
	}
}

// doForwarded sends an admin request to s as if another node had forwarded
// it already, and returns the status and the error code.
func doForwarded(t *testing.T, s *testServer, method, path string) (int, string) {
	t.Helper()
	resp := sendForwarded(t, s, method, path)
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, body.Error.Code
}

// participantIdentities lists the identities in a room as s sees them.
func participantIdentities(t *testing.T, s *testServer, room string) []string {
	t.Helper()
	var ids []string
	for _, p := range s.mustList(200, "GET", "/api/v1/rooms/"+room+"/participants") {
		ids = append(ids, p.(map[string]any)["identity"].(string))
	}
	return ids
}

// A request for a room another node owns is forwarded to the owner: the
// REST routes of the room and a WebSocket join reach node-a through
// node-b, and node-b never runs the room. A request forwarded once already
// is not forwarded again.
func TestClusterForwardsToOwner(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)

	if got := b.mustList(200, "GET", "/api/v1/rooms/r1/participants"); len(got) != 0 {
		t.Fatalf("participants through node-b: %v", got)
	}
	// A body is forwarded as sent: the token names the room.
	tok := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"alice","role":"subscriber"}`)
	token, _ := tok["token"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+b.addr+"/rtc?token="+token, nil)
	if err != nil {
		t.Fatalf("join through node-b: %v", err)
	}
	defer ws.CloseNow()
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("read the joined message: %v", err)
	}
	var joined struct {
		Type string `json:"type"`
		Room struct {
			ID string `json:"id"`
		} `json:"room"`
	}
	if err := json.Unmarshal(msg, &joined); err != nil || joined.Type != "joined" || joined.Room.ID != "r1" {
		t.Fatalf("first message %s (%v), want joined to r1", msg, err)
	}
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("participants on node-a: %v, want alice", got)
	}
	// The socket stays a live signaling channel through node-b.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err = ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"pong"`) {
		t.Fatalf("answer to ping: %s %v", msg, err)
	}

	status, code := doForwarded(t, b, "GET", "/api/v1/rooms/r1/participants")
	if status != http.StatusServiceUnavailable || code != "room_unavailable" {
		t.Fatalf("a forwarded request sent to node-b: %d %s, want 503 room_unavailable", status, code)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}

	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "alice to leave node-a's room", func() bool { return len(participantIdentities(t, a, "r1")) == 0 })
}

// whipRequest sends a WHIP or WHEP request with a join token to s and
// returns its response, body read. A body is SDP.
func whipRequest(t *testing.T, s *testServer, token, method, path, body string) *http.Response {
	t.Helper()
	return whipRequestOf(t, s, token, method, path, "application/sdp", body)
}

// whipRequestOf is whipRequest with a body of contentType.
func whipRequestOf(t *testing.T, s *testServer, token, method, path, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// A WHIP publish through a node that does not own the room reaches the
// owner, offer and all, and so does the DELETE of its session URL.
func TestClusterForwardsWHIP(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	tok := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"pub","role":"publisher"}`)
	token, _ := tok["token"].(string)

	_, offer := publisherPeer(t, "pub")
	whip := func(method, path, body string) *http.Response {
		t.Helper()
		return whipRequest(t, b, token, method, path, body)
	}
	resp := whip("POST", "/whip/r1", offer)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(loc, "/whip/r1/") {
		t.Fatalf("WHIP through node-b: %d, Location %q", resp.StatusCode, loc)
	}
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"pub"}) {
		t.Fatalf("participants on node-a: %v, want pub", got)
	}
	if resp := whip("DELETE", loc, ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s through node-b: %d", loc, resp.StatusCode)
	}
	poll.Until(t, "pub to leave node-a's room", func() bool { return len(participantIdentities(t, a, "r1")) == 0 })
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
}
