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

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
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
