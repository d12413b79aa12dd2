package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
)

// readyAnswer is what /readyz answers now: its status and its message.
func readyAnswer(t *testing.T, s *testServer) (int, string) {
	t.Helper()
	resp, err := s.client.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("/readyz %d: %v", resp.StatusCode, err)
		}
	}
	return resp.StatusCode, body.Error.Message
}

// startLinkedNode starts a cluster node whose link to etcd the test can
// cut, with a lease of a second; the node is ready.
func startLinkedNode(t *testing.T) (*testServer, *etcdtest.Link) {
	t.Helper()
	endpoint, _ := etcdtest.Start(t)
	link := etcdtest.NewLink(t, endpoint)
	cfg := clusterConfig(t, link.URL, "node-a", "0123456789abcdef0123456789abcdef")
	cfg.ClusterLeaseTTL = time.Second
	return startServer(t, cfg), link
}

// cutOff cuts s's link to etcd and waits until s has lost its lease.
func cutOff(t *testing.T, s *testServer, link *etcdtest.Link) {
	t.Helper()
	link.Cut(true)
	poll.Until(t, "/readyz to answer 503", func() bool {
		status, _ := readyAnswer(t, s)
		return status == http.StatusServiceUnavailable
	})
}

// A cluster node cut off from etcd for longer than its lease refuses every
// write: /readyz says so, with the reason, until it holds a lease again.
func TestReadyzWithoutClusterLease(t *testing.T) {
	s, link := startLinkedNode(t)
	if status, _ := readyAnswer(t, s); status != http.StatusOK {
		t.Fatalf("/readyz %d with a lease, want 200", status)
	}
	cutOff(t, s, link)
	if _, message := readyAnswer(t, s); message != "not ready: no cluster lease" {
		t.Fatalf("/readyz message %q", message)
	}
	link.Cut(false)
	poll.Until(t, "/readyz to answer 200 again", func() bool {
		status, _ := readyAnswer(t, s)
		return status == http.StatusOK
	})
}

// A cluster node cut off from etcd, its lease lost, still stops when told
// to: trying to register again holds up nothing the stop waits for.
func TestClusterNodeStopsWhileCutOff(t *testing.T) {
	s, link := startLinkedNode(t)
	cutOff(t, s, link)
	start := time.Now()
	err := s.stop() // fails the test if it does not return
	t.Logf("stopped in %v: %v", time.Since(start), err)
}
