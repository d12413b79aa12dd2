package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
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
func startLinkedNode(t *testing.T) (*testServer, *etcdLink) {
	t.Helper()
	endpoint, _ := etcdtest.Start(t)
	link := newEtcdLink(t, endpoint)
	cfg := clusterConfig(t, link.url, "node-a", "0123456789abcdef0123456789abcdef")
	cfg.ClusterLeaseTTL = time.Second
	return startServer(t, cfg), link
}

// cutOff cuts s's link to etcd and waits until s has lost its lease.
func cutOff(t *testing.T, s *testServer, link *etcdLink) {
	t.Helper()
	link.cut(true)
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
	link.cut(false)
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

// etcdLink is a TCP relay between a node and etcd that a test can cut, as
// a network partition would, and mend.
type etcdLink struct {
	url string
	ln  net.Listener

	mu    sync.Mutex // guards the following
	down  bool
	conns map[net.Conn]struct{}
}

func newEtcdLink(t *testing.T, endpoint string) *etcdLink {
	t.Helper()
	target := strings.TrimPrefix(endpoint, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &etcdLink{url: "http://" + ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		l.cut(true)
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if !l.track(in, out) {
				in.Close()
				out.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return l
}

// track adds the two ends of a relayed connection, unless the link is cut.
func (l *etcdLink) track(in, out net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	l.conns[in], l.conns[out] = struct{}{}, struct{}{}
	return true
}

// cut closes every relayed connection and refuses new ones while down.
func (l *etcdLink) cut(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}
