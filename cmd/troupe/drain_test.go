package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// startChild runs `troupe serve` as a child process with args on a free
// port, the API key pair given in its environment, and waits until it is
// ready; s calls it with token. It is killed when the test ends, if it
// still runs.
func startChild(t *testing.T, key auth.Key, token string, args ...string) (*testServer, *exec.Cmd) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--http-addr", addr, "--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--log-level", "error"}, args...)...)
	cmd.Env = append(proc.WithoutTroupeEnv(os.Environ()), mainEnv+"=1",
		envName("api-key")+"="+key.ID, envName("api-secret")+"="+key.Secret)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	s := &testServer{t: t, addr: addr, url: "http://" + addr, token: token, key: key, client: &http.Client{Timeout: poll.Timeout}}
	waitReady(t, s.url)
	return s, cmd
}

// startDrainChild runs a single-node server as a child process on dataDir
// with extra flags.
func startDrainChild(t *testing.T, dataDir string, key auth.Key, extra ...string) (*testServer, *exec.Cmd) {
	t.Helper()
	token, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, key, token, append([]string{"--data-dir", dataDir}, extra...)...)
}

// joinToken mints a join token for identity in room through s.
func joinToken(t *testing.T, s *testServer, room, identity, role string) string {
	t.Helper()
	got := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"`+identity+`","role":"`+role+`"}`)
	return got["token"].(string)
}

// sendVideo publishes video in room as "pub" by WHIP and sends it until
// ctx ends or the test does.
func sendVideo(t *testing.T, ctx context.Context, s *testServer, room string) {
	t.Helper()
	pc := publish(t, s, room, "pub")
	rtpSender := pc.GetSenders()[0]
	sender := &rtctest.Sender{Track: rtpSender.Track().(*webrtc.TrackLocalStaticRTP), PayloadSize: 600, KeyframeEvery: 10, TimestampStep: 3000}
	go sender.ServeKeyframeRequests(rtpSender)
	sendCtx, stopSending := context.WithCancel(ctx)
	sent := make(chan error, 1)
	go func() { sent <- sender.Run(sendCtx, 0, 10*time.Millisecond) }()
	t.Cleanup(func() {
		stopSending()
		<-sent
	})
}

// streamVideo publishes video into room through s by WHIP, sending until
// the test ends, and returns a subscriber joined by signaling with the
// receiver of that video.
func streamVideo(t *testing.T, ctx context.Context, s *testServer, room string) (*client.Client, *rtctest.Receiver) {
	t.Helper()
	sendVideo(t, ctx, s, room)
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan *rtctest.Receiver, 1)
	sub, err := client.Dial(ctx, client.Config{URL: s.url, Token: joinToken(t, s, room, "sub", "subscriber"), API: api,
		OnTrack: func(tr *webrtc.TrackRemote) {
			r := rtctest.NewReceiver(tr)
			select {
			case received <- r: // the first track is the one returned
			default: // a later one (another publisher's) is read and dropped
			}
			r.Run()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	select {
	case r := <-received:
		return sub, r
	case <-ctx.Done():
		t.Fatal("no video reached the subscriber")
		return nil, nil
	}
}

// readyStatus is what /readyz answers now; 0 if the server does not.
func readyStatus(s *testServer) int {
	resp, err := s.client.Get(s.url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// errorCode is the code of an API error body.
func errorCode(body any) string {
	m, _ := body.(map[string]any)
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// SIGTERM with a session running: /readyz answers 503 at once, new rooms
// and joins are refused with 503 draining while the media goes on and REST
// writes are acknowledged, then, at the drain timeout, the participant is
// told to reconnect (1001) and the process exits 0. After a restart every
// acknowledged write is there and nothing refused is.
func TestSIGTERMDrainsSessionsThenStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server twice as a child process")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a bound against a hang
	defer cancel()
	dataDir := t.TempDir()
	key := auth.Key{ID: "TKdrain", Secret: strings.Repeat("d", 32)}
	// Long enough for the checks below on a loaded machine.
	s, cmd := startDrainChild(t, dataDir, key, "--drain-timeout", "15s")
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"d1","name":"before"}`)
	sub, r := streamVideo(t, ctx, s, "d1")
	poll.Until(t, "video before the drain", func() bool { return r.Stats().Packets >= 20 })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "/readyz to answer 503", func() bool { return readyStatus(s) == http.StatusServiceUnavailable })
	during := r.Stats().Packets

	status, body := s.do("POST", "/api/v1/rooms", `{"id":"d2","name":"refused"}`)
	if status != http.StatusServiceUnavailable || errorCode(body) != "draining" {
		t.Fatalf("create while draining: %d %v, want 503 draining", status, body)
	}
	_, offer := publisherPeer(t, "late")
	resp := whipRequest(t, s, joinToken(t, s, "d1", "late", "publisher"), "POST", "/whip/d1", offer)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("WHIP join while draining: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	s.mustDo(200, "PATCH", "/api/v1/rooms/d1", `{"name":"during"}`)
	poll.Until(t, "video to go on during the drain", func() bool { return r.Stats().Packets >= during+50 })

	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("the subscriber's socket stayed open after the drain")
	}
	if code := websocket.CloseStatus(sub.Err()); code != websocket.StatusGoingAway {
		t.Fatalf("the subscriber's socket ended with %v, want 1001 (reconnect)", sub.Err())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the drained server exited with %v, want 0", err)
	}

	s, _ = startDrainChild(t, dataDir, key, "--drain-timeout", "0")
	if got := s.mustDo(200, "GET", "/api/v1/rooms/d1", ""); got["name"] != "during" {
		t.Fatalf("room d1 after the restart: %v, want the name written during the drain", got)
	}
	s.mustDo(404, "GET", "/api/v1/rooms/d2", "")
}

// A drain asked through the API ends as soon as the node's rooms are
// empty, long before its timeout.
func TestDrainEndsOnceRoomsAreEmpty(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.DrainTimeout = time.Hour
	s := startServer(t, cfg)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	publish(t, s, "r1", "pub")
	self := listNodes(t, s)[0].ID
	got := s.mustDo(202, "POST", "/api/v1/cluster/nodes/"+self+"/drain", "")
	if got["id"] != self || got["draining"] != true {
		t.Fatalf("drain answer: %v", got)
	}
	poll.Until(t, "/readyz to answer 503", func() bool { return readyStatus(s) == http.StatusServiceUnavailable })
	if m := metricsText(t, s); !strings.Contains(m, "\ntroupe_node_draining 1\n") {
		t.Fatal("/metrics does not say that the node drains")
	}
	if status, body := s.do("POST", "/api/v1/rooms", `{"id":"r2","name":"two"}`); status != http.StatusServiceUnavailable || errorCode(body) != "draining" {
		t.Fatalf("create while draining: %d %v", status, body)
	}
	s.mustDo(404, "POST", "/api/v1/cluster/nodes/elsewhere/drain", "")
	parts := s.mustList(200, "GET", "/api/v1/rooms/r1/participants")
	pid := parts[0].(map[string]any)["id"].(string)
	s.mustDo(204, "DELETE", "/api/v1/rooms/r1/participants/"+pid, "")
	// stop fails the test if the drain runs on (its wait is far shorter
	// than the hour).
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// In a cluster, draining a node through another node forwards the call;
// the drained node refuses joins of its rooms while its session goes on,
// and the rooms created through it are placed on the other node.
func TestClusterDrainSendsNewRoomsElsewhere(t *testing.T) {
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	a := drainableNode(t, endpoint, secret)
	b := startServer(t, clusterConfig(t, endpoint, "node-b", secret))

	got := b.mustDo(202, "POST", "/api/v1/cluster/nodes/node-a/drain", "")
	if got["id"] != "node-a" || got["draining"] != true || got["self"] != true {
		t.Fatalf("drain of node-a through node-b: %v, want node-a's own answer", got)
	}
	if readyStatus(a) != http.StatusServiceUnavailable {
		t.Fatal("node-a ready after its drain was acknowledged")
	}
	poll.Until(t, "node-b to see node-a draining", func() bool {
		for _, n := range listNodes(t, b) {
			if n.ID == "node-a" {
				return n.Draining
			}
		}
		return false
	})
	// node-a places new rooms on the nodes it knows of: node-b, which
	// started after it, once its watch has seen it.
	poll.Until(t, "node-a to see node-b", func() bool {
		return slices.ContainsFunc(listNodes(t, a), func(n listedNode) bool { return n.ID == "node-b" })
	})
	for _, id := range []string{"n1", "n2", "n3"} {
		room := a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"`+id+`","name":"new"}`)
		if room["node_id"] != "node-b" {
			t.Fatalf("room %s created through the draining node-a runs on %v, want node-b", id, room["node_id"])
		}
	}
	_, offer := publisherPeer(t, "late")
	if resp := whipRequest(t, b, joinToken(t, b, "r1", "late", "publisher"), "POST", "/whip/r1", offer); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("join of node-a's room while it drains: %d, want 503", resp.StatusCode)
	}
	parts := a.mustList(200, "GET", "/api/v1/rooms/r1/participants")
	if n := len(parts); n != 1 {
		t.Fatalf("node-a's room has %d members during the drain, want its publisher", n)
	}
}

// A second SIGTERM during the drain cuts it short: the node stops at once
// and still exits 0.
func TestSecondSIGTERMCutsTheDrainShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server as a child process")
	}
	key := auth.Key{ID: "TKdrain2", Secret: strings.Repeat("e", 32)}
	s, cmd := startDrainChild(t, t.TempDir(), key, "--drain-timeout", "1h")
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"d1","name":"one"}`)
	publish(t, s, "d1", "pub") // keeps the room from emptying

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "/readyz to answer 503", func() bool { return readyStatus(s) == http.StatusServiceUnavailable })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the server stopped by a second SIGTERM exited with %v, want 0", err)
		}
	case <-time.After(time.Minute): // a bound against a hang: the drain is an hour
		cmd.Process.Kill()
		<-exited
		t.Fatal("the second SIGTERM did not cut the drain short")
	}
}
