package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore"
)

// startCluster starts one node per id on one etcd.
func startCluster(t *testing.T, ids ...string) (endpoint string, nodes []*testServer) {
	t.Helper()
	endpoint = etcdStart(t)
	secret := strings.Repeat("s", 32)
	for _, id := range ids {
		nodes = append(nodes, startServer(t, clusterConfig(t, endpoint, id, secret)))
	}
	return endpoint, nodes
}

// listedNode is a node as GET /api/v1/cluster/nodes lists it.
type listedNode struct {
	ID           string `json:"id"`
	AdvertiseURL string `json:"advertise_url"`
	Rooms        int    `json:"rooms"`
	Participants int    `json:"participants"`
	Tracks       int    `json:"tracks"`
	Load         int    `json:"load"`
	Self         bool   `json:"self"`
	Draining     bool   `json:"draining"`
}

func listNodes(t *testing.T, s *testServer) []listedNode {
	t.Helper()
	body := s.mustDo(200, "GET", "/api/v1/cluster/nodes", "")
	b, err := json.Marshal(body["nodes"])
	if err != nil {
		t.Fatal(err)
	}
	var nodes []listedNode
	if err := json.Unmarshal(b, &nodes); err != nil {
		t.Fatal(err)
	}
	return nodes
}

// loads sums up the nodes list as "id:rooms/participants/tracks=load".
func loads(nodes []listedNode) string {
	var out []string
	for _, n := range nodes {
		out = append(out, fmt.Sprintf("%s:%d/%d/%d=%d", n.ID, n.Rooms, n.Participants, n.Tracks, n.Load))
	}
	return strings.Join(out, " ")
}

// New rooms go to the least loaded node, wherever they are created: six
// rooms created through one node of three, each once the loads are
// published, land two on each node. Every node names the same owner for
// each room, in the room object and in the list, and the nodes list counts
// what each node runs, the same through every node.
func TestPlacementSpreadsRoomsByLoad(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b", "node-c")
	a := nodes[0]
	owners := map[string]string{} // room -> node
	perNode := map[string]int{}
	for i := range 6 {
		room := fmt.Sprintf("r%d", i)
		got := a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"`+room+`","name":"`+room+`"}`)
		owner, _ := got["node_id"].(string)
		if owner == "" {
			t.Fatalf("room %s created with no node_id: %v", room, got)
		}
		owners[room] = owner
		perNode[owner]++
		poll.Until(t, "the loads to be published", func() bool {
			total := 0
			for _, n := range listNodes(t, a) {
				total += n.Rooms
			}
			return total == i+1
		})
	}
	if perNode["node-a"] != 2 || perNode["node-b"] != 2 || perNode["node-c"] != 2 {
		t.Fatalf("rooms per node: %v, want 2 each", perNode)
	}
	// The first room stays on the node that got the call: a tie is its own.
	if owners["r0"] != "node-a" {
		t.Errorf("r0 placed on %s, want node-a (idle cluster, tie kept)", owners["r0"])
	}

	for i, s := range nodes {
		for room, owner := range owners {
			got := s.mustDo(200, "GET", "/api/v1/rooms/"+room, "")
			if got["node_id"] != owner {
				t.Errorf("GET %s through node %d: node_id %v, want %s", room, i, got["node_id"], owner)
			}
		}
		list := s.mustDo(200, "GET", "/api/v1/rooms?limit=100", "")
		for _, r := range list["rooms"].([]any) {
			m := r.(map[string]any)
			if id := m["id"].(string); m["node_id"] != owners[id] {
				t.Errorf("listed %s through node %d: node_id %v, want %s", id, i, m["node_id"], owners[id])
			}
		}
		listed := listNodes(t, s)
		if len(listed) != 3 {
			t.Fatalf("nodes through node %d: %+v", i, listed)
		}
		for j, n := range listed {
			if n.Rooms != 2 || n.Participants != 0 || n.Load != 2 || n.Self != (i == j) || n.AdvertiseURL != nodes[j].url {
				t.Errorf("node %d lists %+v (self %v), want 2 rooms, load 2 at %s", i, n, i == j, nodes[j].url)
			}
		}
	}
	// Each node runs its own rooms only.
	for i, s := range nodes {
		if got := roomActors(t, s); got != "2" {
			t.Errorf("node %d runs %s room actors, want 2", i, got)
		}
	}

	// /metrics has the node's own figures, labelled with its id.
	metrics := metricsText(t, nodes[1])
	for _, want := range []string{
		`troupe_cluster_node_info{advertise_url="` + nodes[1].url + `",node="node-b"} 1`,
		`troupe_cluster_node_rooms{node="node-b"} 2`,
		`troupe_cluster_node_participants{node="node-b"} 0`,
		`troupe_cluster_node_load{node="node-b"} 2`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics of node-b lacks %q", want)
		}
	}
	metrics = metricsText(t, a)
	for _, want := range []string{
		`troupe_cluster_placements_total{node="node-a",placed="here"} 2`,
		`troupe_cluster_placements_total{node="node-a",placed="elsewhere"} 4`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics of node-a lacks %q", want)
		}
	}
}

func metricsText(t *testing.T, s *testServer) string {
	t.Helper()
	_, b := s.get(s.url + "/metrics")
	return string(b)
}

// A burst of new rooms spreads even before the loads are published: the
// node that places them counts what it placed on each node.
func TestPlacementSpreadsABurst(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b", "node-c")
	var owners []string
	for i := range 3 {
		got := nodes[1].mustDo(201, "POST", "/api/v1/rooms", fmt.Sprintf(`{"id":"burst%d","name":"burst"}`, i))
		owners = append(owners, got["node_id"].(string))
	}
	slices.Sort(owners)
	if !slices.Equal(owners, []string{"node-a", "node-b", "node-c"}) {
		t.Fatalf("a burst of 3 rooms went to %v, want one on each node", owners)
	}
	// A room created without an id keeps the id the first node gave it
	// when it is placed elsewhere: it is found where it says.
	for range 3 {
		got := nodes[1].mustDo(201, "POST", "/api/v1/rooms", `{"name":"no id"}`)
		id, owner := got["id"].(string), got["node_id"].(string)
		for _, s := range nodes {
			if again := s.mustDo(200, "GET", "/api/v1/rooms/"+id, ""); again["node_id"] != owner || again["name"] != "no id" {
				t.Fatalf("room %s, created on %s: read back %v", id, owner, again)
			}
		}
	}
	if got := nodes[0].mustDo(200, "GET", "/api/v1/rooms", ""); got["total"] != 6.0 {
		t.Fatalf("rooms: %v, want 6", got["total"])
	}
}

// A record of a node whose lease is gone (a stale read) does not lose the
// room, nor send it back and forth: the node that placed it keeps it.
func TestPlacementOnAStaleRecord(t *testing.T) {
	endpoint, nodes := startCluster(t, "node-a")
	a := nodes[0]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"busy","name":"busy"}`)
	poll.Until(t, "node-a's load to be published", func() bool { return listNodes(t, a)[0].Rooms == 1 })

	// node-z's record names a lease etcd no longer holds, as a record read
	// just before its node died would: it looks idle.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: poll.Timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	held, err := cli.Grant(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := cli.Grant(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	record := fmt.Sprintf(`{"id":"node-z","advertise_url":"http://127.0.0.1:1","started_at":"2026-01-01T00:00:00Z","load":{},"lease":%d}`, gone.ID)
	if _, err := cli.Put(t.Context(), "troupe/node/node-z", record, clientv3.WithLease(held.ID)); err != nil {
		t.Fatal(err)
	}
	// The nodes list is what placement reads: once node-z shows, it counts.
	poll.Until(t, "node-a to see node-z", func() bool { return loads(listNodes(t, a)) == "node-a:1/0/0=1 node-z:0/0/0=0" })
	if m := metricsText(t, a); !strings.Contains(m, `troupe_cluster_nodes{node="node-a"} 2`+"\n") {
		t.Error("troupe_cluster_nodes of node-a is not 2")
	}
	got := a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"fresh","name":"fresh"}`)
	if got["node_id"] != "node-a" {
		t.Fatalf("room placed on a stale record: node_id %v, want node-a", got["node_id"])
	}
	if got := roomActors(t, a); got != "2" {
		t.Errorf("node-a runs %s room actors, want 2", got)
	}
}

// A room that no node owns any more (it passivated) is placed again when a
// request next needs it, whatever the request: a WHIP publish, or a REST
// call, through the busier node, starts the room on the idler one.
func TestPlacementOfAnIdleRoom(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	var nodes []*testServer
	for _, id := range []string{"node-a", "node-b"} {
		cfg := clusterConfig(t, endpoint, id, secret)
		// Long enough for the node records to count the rooms before they
		// go: placement trusts a record only once it changed since.
		cfg.PassivateAfter = 3 * time.Second
		nodes = append(nodes, startServer(t, cfg))
	}
	a, b := nodes[0], nodes[1]

	// node-a is busy: a room with someone in it never passivates.
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"busy","name":"busy"}`)
	tok := a.mustDo(200, "POST", "/api/v1/rooms/busy/tokens", `{"identity":"stay","role":"subscriber"}`)["token"].(string)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+a.addr+"/rtc?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	poll.Until(t, "node-a's load to be published", func() bool { return loads(listNodes(t, b)) == "node-a:1/1/0=2 node-b:0/0/0=0" })

	for _, id := range []string{"idle", "idle2"} {
		if got := a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"`+id+`","name":"idle"}`); got["node_id"] != "node-b" {
			t.Fatalf("new room %s placed on %v, want the idle node-b", id, got["node_id"])
		}
	}
	poll.Until(t, "node-b's record to count its rooms", func() bool { return loads(listNodes(t, a)) == "node-a:1/1/0=2 node-b:2/0/0=2" })
	poll.Until(t, "the idle rooms to passivate and be owned by no node", func() bool {
		got := a.mustDo(200, "GET", "/api/v1/rooms?limit=100", "")
		unowned := 0
		for _, r := range got["rooms"].([]any) {
			if m := r.(map[string]any); m["node_id"] == nil {
				unowned++
			}
		}
		return unowned == 2 && loads(listNodes(t, a)) == "node-a:1/1/0=2 node-b:0/0/0=0"
	})

	pubTok := a.mustDo(200, "POST", "/api/v1/rooms/idle/tokens", `{"identity":"pub","role":"publisher"}`)["token"].(string)
	_, offer := publisherPeer(t, "pub")
	resp := whipRequest(t, a, pubTok, "POST", "/whip/idle", offer)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("WHIP through node-a to an unowned room: %d", resp.StatusCode)
	}
	if got := participantIdentities(t, b, "idle"); !slices.Equal(got, []string{"pub"}) {
		t.Fatalf("participants of the idle room on node-b: %v", got)
	}
	if got := roomActors(t, a); got != "1" {
		t.Errorf("node-a runs %s room actors, want 1 (busy)", got)
	}

	// node-b has a member now, as node-a: a tie, and node-a keeps the room.
	poll.Until(t, "node-b's load to be published", func() bool { return loads(listNodes(t, a)) == "node-a:1/1/0=2 node-b:1/1/0=2" })
	if got := a.mustDo(200, "GET", "/api/v1/rooms/idle2", ""); got["node_id"] != "node-a" {
		t.Fatalf("GET through node-a of an unowned room on a tie: node_id %v, want node-a", got["node_id"])
	}
	if got := roomActors(t, a); got != "2" {
		t.Errorf("node-a runs %s room actors, want 2", got)
	}
}

// The choice: least load first, then this node, then the lowest id; rooms
// placed lately count beside a record until it changes or they are
// pendingFor old.
func TestPlacementsChoose(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := func(id string, rooms, participants, tracks int, rev int64) etcdstore.NodeInfo {
		return etcdstore.NodeInfo{ID: id, Revision: rev, Load: etcdstore.NodeLoad{Rooms: rooms, Participants: participants, Tracks: tracks}}
	}
	var p placements
	choose := func(self string, nodes ...etcdstore.NodeInfo) string {
		t.Helper()
		n, ok := p.choose(self, nodes, t0)
		if !ok {
			t.Fatal("no choice among nodes")
		}
		return n.ID
	}
	if _, ok := p.choose("a", nil, t0); ok {
		t.Fatal("a choice among no node")
	}
	if _, ok := p.choose("a", []etcdstore.NodeInfo{draining(rec("a", 0, 0, 0, 1))}, t0); ok {
		t.Fatal("a choice among draining nodes only")
	}
	for _, c := range []struct {
		self  string
		nodes []etcdstore.NodeInfo
		want  string
	}{
		{"b", []etcdstore.NodeInfo{rec("a", 0, 0, 0, 1), rec("b", 0, 0, 0, 1), rec("c", 0, 0, 0, 1)}, "b"},
		{"x", []etcdstore.NodeInfo{rec("c", 0, 0, 0, 1), rec("a", 0, 0, 0, 1)}, "a"},
		{"a", []etcdstore.NodeInfo{rec("a", 1, 0, 0, 1), rec("b", 0, 0, 0, 1)}, "b"},
		// Participants and tracks weigh as rooms do.
		{"a", []etcdstore.NodeInfo{rec("a", 1, 3, 2, 1), rec("b", 2, 2, 1, 1)}, "b"},
		{"b", []etcdstore.NodeInfo{rec("a", 1, 3, 2, 1), rec("b", 2, 3, 2, 1)}, "a"},
		// A draining node gets nothing, however idle, self or not.
		{"a", []etcdstore.NodeInfo{draining(rec("a", 0, 0, 0, 1)), rec("b", 5, 5, 5, 1)}, "b"},
		{"b", []etcdstore.NodeInfo{draining(rec("a", 0, 0, 0, 1)), rec("b", 5, 5, 5, 1), rec("c", 9, 9, 0, 1)}, "b"},
	} {
		if got := choose(c.self, c.nodes...); got != c.want {
			t.Errorf("choose from %s among %+v = %s, want %s", c.self, c.nodes, got, c.want)
		}
	}

	a, b := rec("a", 0, 0, 0, 1), rec("b", 0, 0, 0, 7)
	p.note(a, t0)
	if got := choose("a", a, b); got != "b" {
		t.Fatalf("after a room placed on a: %s, want b", got)
	}
	p.note(b, t0)
	p.note(b, t0)
	if got := choose("b", a, b); got != "a" {
		t.Fatalf("after two rooms placed on b, one on a: %s, want a", got)
	}
	// b's record changed: it counts its rooms itself now.
	if got := choose("b", a, rec("b", 1, 0, 0, 8)); got != "b" {
		t.Fatalf("once b's record changed: %s, want b (1 each, self)", got)
	}
	// Rooms placed long ago no longer count, record changed or not.
	later := t0.Add(pendingFor)
	if n, _ := p.choose("b", []etcdstore.NodeInfo{a, b}, later); n.ID != "b" {
		t.Fatalf("placements %v old still count: %s chosen", pendingFor, n.ID)
	}
	// Nor are they kept.
	p.note(rec("c", 0, 0, 0, 1), later)
	if len(p.byNode) != 1 {
		t.Fatalf("placements kept: %v, want c's alone", p.byNode)
	}
}

func draining(n etcdstore.NodeInfo) etcdstore.NodeInfo {
	n.Draining = true
	return n
}

// A single node lists itself with what it runs now, and its rooms carry
// no node_id.
func TestSingleNodeListsItsLoad(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.NodeID = "solo"
	s := startServer(t, cfg)
	if got := s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`); got["node_id"] != nil {
		t.Fatalf("node_id on a single node: %v, want null", got["node_id"])
	}
	if n := listNodes(t, s); loads(n) != "solo:1/0/0=1" || !n[0].Self {
		t.Fatalf("nodes: %+v", n)
	}
	if m := metricsText(t, s); strings.Contains(m, "troupe_cluster_") {
		t.Error("a single node serves cluster metrics")
	}
}
