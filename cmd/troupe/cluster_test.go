package main

import (
	"errors"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/troupe-media/troupe/internal/poll"
)

// embeddedEtcd starts a single-member etcd in the test binary on loopback,
// stopped when the test ends, and returns its client URL.
func embeddedEtcd(t *testing.T) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Name = "troupe-test"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{local}, []url.URL{local}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{local}, []url.URL{local}
	cfg.InitialCluster = cfg.Name + "=" + local.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcd: %v", err)
	case <-time.After(time.Minute): // a bound against a hang
		t.Fatal("etcd not ready")
	}
	return "http://" + e.Clients[0].Addr().String()
}

func clusterConfig(t *testing.T, endpoint, nodeID, secret string) Config {
	cfg := testConfig(t.TempDir())
	cfg.EtcdEndpoints = stringList{endpoint}
	cfg.NodeID = nodeID
	cfg.APIKey, cfg.APISecret = "TKcluster", secret
	return cfg
}

// Two nodes on one etcd list each other; a third with another API secret
// refuses to start, saying why.
func TestClusterNodes(t *testing.T) {
	endpoint := embeddedEtcd(t)
	secret := strings.Repeat("s", 32)
	a := startServer(t, clusterConfig(t, endpoint, "node-a", secret))
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))

	for _, s := range []*testServer{a, b} {
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewServer(clusterConfig(t, endpoint, "node-c", strings.Repeat("x", 32)), ln, io.Discard, io.Discard)
	if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), "every node must share them") {
		t.Fatalf("a node with another secret: %v, want ErrKeyMismatch", err)
	}
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
	resp, err := s.client.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "troupe_room_actors "); ok {
			return v
		}
	}
	t.Fatal("/metrics has no troupe_room_actors")
	return ""
}

// A room runs on the node that claimed it: another node answers 503 for
// it. When the owner loses its lease it stops its rooms at once and
// registers again, and the other node can then claim the room.
func TestClusterLeaseLossStopsRooms(t *testing.T) {
	endpoint := embeddedEtcd(t)
	secret := strings.Repeat("s", 32)
	a := startServer(t, clusterConfig(t, endpoint, "node-a", secret))
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	if got := roomActors(t, a); got != "1" {
		t.Fatalf("node-a runs %s room actors, want 1", got)
	}
	b.mustDo(503, "GET", "/api/v1/rooms/r1/participants", "")

	// etcd expires node-a's lease: revoke it as etcd would.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
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
