package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// failoverTTL is the lease TTL of the nodes these tests kill: how long a
// dead node's rooms wait for another owner. The shortest etcd grants with
// its default election timeout is 2s. The nodes that stay up keep the
// default TTL: a loaded machine may hold back their keep-alives for
// longer than this.
const failoverTTL = 2 * time.Second

// refusingReceiver is a webhook endpoint that answers 503 to everything, so
// that every event stays in the outbox for the test to read.
func refusingReceiver(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/hook"
}

// failoverConfig is a node of the failover tests: every room's events
// queued for hook.
func failoverConfig(t *testing.T, endpoint, nodeID, hook string) Config {
	cfg := clusterConfig(t, endpoint, nodeID, strings.Repeat("s", 32))
	cfg.WebhookURLs, cfg.WebhookAllowPrivate = stringList{hook}, true
	return cfg
}

// startChildNode runs a cluster node as a child process, so that the test
// can kill it as a machine dies: no lease revoked, no room released, no
// record closed. Its lease lasts failoverTTL. It is killed when the test
// ends, if it still runs.
func startChildNode(t *testing.T, cfg Config, token string) (*testServer, *exec.Cmd) {
	t.Helper()
	return startChild(t, auth.Key{ID: cfg.APIKey, Secret: cfg.APISecret}, token,
		"--data-dir", cfg.DataDir, "--etcd-endpoints", strings.Join(cfg.EtcdEndpoints, ","), "--node-id", cfg.NodeID,
		"--cluster-lease-ttl", failoverTTL.String(), "--webhook-urls", strings.Join(cfg.WebhookURLs, ","),
		"--webhook-allow-private")
}

// createOn creates room id on node s itself, as a request another node
// forwarded, so that s owns it whatever node placement would pick.
func createOn(t *testing.T, s *testServer, id string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.url+"/api/v1/rooms", strings.NewReader(`{"id":"`+id+`","name":"`+id+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	s.forwardedBy(req.Header, "node-test", "POST", "/api/v1/rooms")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create room %s on %s: %d %s", id, s.url, resp.StatusCode, body)
	}
}

// publisherPeer returns a pion peer that sends video as identity, and
// its offer with every candidate gathered, as a WHIP client sends it. The
// peer is closed when the test ends.
func publisherPeer(t *testing.T, identity string) (*webrtc.PeerConnection, string) {
	t.Helper()
	pc := loopbackPeer(t)
	video, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", identity)
	if err == nil {
		_, err = pc.AddTrack(video)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pc, gatheredOffer(t, pc)
}

// publish joins room through node s by WHIP with a pion peer that sends
// video, and returns once its connection is up.
func publish(t *testing.T, s *testServer, room, identity string) *webrtc.PeerConnection {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"`+identity+`","role":"publisher"}`)
	pc, offer := publisherPeer(t, identity)
	answer, _ := postSDP(t, s, "/whip/"+room, tok["token"].(string), offer)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, identity+"'s peer connection to come up", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	return pc
}

// sessionInProgress returns the id of room's session in progress, read
// from the store through s: no room is asked.
func sessionInProgress(t *testing.T, s *testServer, room string) string {
	t.Helper()
	body := s.mustDo(200, "GET", "/api/v1/sessions?status=in-progress&room_id="+room, "")
	list, _ := body["sessions"].([]any)
	if len(list) != 1 {
		t.Fatalf("sessions in progress in %s: %v", room, body)
	}
	return list[0].(map[string]any)["id"].(string)
}

// leaveReasons maps each identity of a session's history, read from the
// store through s, to its leave reason ("" while present).
func leaveReasons(t *testing.T, s *testServer, session string) map[string]string {
	t.Helper()
	body := s.mustDo(200, "GET", "/api/v1/sessions/"+session+"/participants", "")
	out := map[string]string{}
	list, _ := body["participants"].([]any)
	for _, p := range list {
		m := p.(map[string]any)
		reason, _ := m["leave_reason"].(string)
		out[m["identity"].(string)] = reason
	}
	return out
}

// plainStore opens the cluster's store on etcd as a tool would: it reads
// everything and writes unfenced.
func plainStore(t *testing.T, endpoint string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(t.Context(), etcdstore.Config{Endpoints: []string{endpoint}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nodeStore opens the cluster's store on etcd as node nodeID would, with
// a lease of ttl: a stand-in for a node that owns rooms.
func nodeStore(t *testing.T, endpoint, nodeID string, ttl time.Duration) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(t.Context(), etcdstore.Config{Endpoints: []string{endpoint}, NodeID: nodeID,
		LeaseTTL: ttl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// standIn makes s, opened by nodeStore as nodeID, a node served at url
// (a test's own server that stands for a node) and the owner of room.
func standIn(t *testing.T, s *etcdstore.Store, nodeID, url, room string) {
	t.Helper()
	if _, err := s.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutNode(t.Context(), etcdstore.NodeInfo{ID: nodeID, AdvertiseURL: url}); err != nil {
		t.Fatal(err)
	}
	if err := s.Claim(t.Context(), room); err != nil {
		t.Fatal(err)
	}
}

// leftEvents returns the data of the participant-left events pending in
// the outbox for session.
func leftEvents(t *testing.T, store *etcdstore.Store, session string) []map[string]any {
	t.Helper()
	page, err := store.ListWebhookDeliveries(t.Context(), persistence.DeliveryQuery{Status: persistence.DeliveryPending})
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, e := range page.Deliveries {
		if e.Event != "participant-left" || e.SessionId != session {
			continue
		}
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// A node dies (SIGKILL) with a publisher in its room. Once etcd has
// expired its lease, the other node's watcher takes the room over with no
// request for it: the member the dead node left open is closed with
// node-lost and one participant-left event, and the session goes on. The
// node then serves the room: its REST routes, and a new join into the same
// session.
func TestFailoverAfterNodeDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node as a child process")
	}
	endpoint := etcdStart(t)
	hook := refusingReceiver(t)
	b := startServer(t, failoverConfig(t, endpoint, "node-b", hook))
	a, cmd := startChildNode(t, failoverConfig(t, endpoint, "node-a", hook), b.token)
	store := plainStore(t, endpoint)

	createOn(t, a, "r1")
	publish(t, a, "r1", "ann")
	ses := sessionInProgress(t, b, "r1")
	if got := leaveReasons(t, b, ses); len(got) != 1 || got["ann"] != "" {
		t.Fatalf("history before the kill: %v", got)
	}

	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	poll.Until(t, "node-b's watcher to close ann's record", func() bool { return leaveReasons(t, b, ses)["ann"] != "" })
	closed := time.Since(killed)
	if got := leaveReasons(t, b, ses)["ann"]; got != string(actors.ReasonNodeLost) {
		t.Fatalf("ann left for %q, want %q", got, actors.ReasonNodeLost)
	}
	if owner, err := store.Owner(t.Context(), "r1"); err != nil || owner != "node-b" {
		t.Fatalf("owner of r1 after the takeover: %q %v", owner, err)
	}
	if got := roomActors(t, b); got != "1" {
		t.Fatalf("node-b runs %s room actors after the takeover, want 1", got)
	}
	b.mustDo(200, "GET", "/api/v1/rooms/r1/participants", "")
	served := time.Since(killed)
	t.Logf("failover with a lease TTL of %v: SIGKILL to the dead node's member closed by the watcher %v, to the room served %v",
		failoverTTL, closed.Round(time.Millisecond), served.Round(time.Millisecond))

	left := leftEvents(t, store, ses)
	if len(left) != 1 || left[0]["identity"] != "ann" || left[0]["reason"] != string(actors.ReasonNodeLost) {
		t.Fatalf("participant-left events in the outbox: %v, want one for ann with %q", left, actors.ReasonNodeLost)
	}

	publish(t, b, "r1", "bob")
	if got := participantIdentities(t, b, "r1"); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("participants after a join on node-b: %v", got)
	}
	if now := sessionInProgress(t, b, "r1"); now != ses {
		t.Fatalf("bob joined session %s, want the one that went on, %s", now, ses)
	}
}

// orphanRoom writes room id as a cluster whose nodes all stopped leaves it:
// a session in progress with a member open, and no owner.
func orphanRoom(t *testing.T, store *etcdstore.Store, id string) string {
	t.Helper()
	now := timestamppb.Now()
	room := &recordpb.Room{Id: id, Name: id, Status: recordpb.RoomStatus_ROOM_STATUS_ACTIVE, CreatedAt: now, UpdatedAt: now,
		Revision: 1, ActiveSessionId: "ses_" + id}
	actors.ApplyDefaults(room)
	room.Config.EmptyTimeout = actors.DefaultEmptyTimeout
	ses := &recordpb.Session{Id: room.ActiveSessionId, RoomId: id, Name: id, Status: recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS,
		StartTime: now, CreatedAt: now, UpdatedAt: now, LastActivityAt: now, ParticipantCount: 1, TotalParticipants: 1, MaxConcurrentParticipants: 1}
	member := &recordpb.SessionMember{SessionId: ses.Id, ParticipantId: "PA_" + id, Identity: "gone", Role: string(actors.RolePublisher), JoinedAt: now}
	if err := store.Apply(t.Context(), persistence.Writes{Room: room, Sessions: []*recordpb.Session{ses}, Members: []*recordpb.SessionMember{member}}); err != nil {
		t.Fatal(err)
	}
	return ses.Id
}

// A node that starts ends no session: the sessions in progress of rooms a
// live node owns go on untouched, members and all, and one that no node
// owns (its nodes all stopped) is taken over, its member closed node-lost,
// instead of being ended as a single server's start-up would.
func TestFailoverNodeStartLeavesOwnedSessionsAlone(t *testing.T) {
	endpoint := etcdStart(t)
	hook := refusingReceiver(t)
	a := startServer(t, failoverConfig(t, endpoint, "node-a", hook))
	store := plainStore(t, endpoint)
	createOn(t, a, "r1")
	publish(t, a, "r1", "ann")
	ses := sessionInProgress(t, a, "r1")
	// Written after node-a's watcher scanned: only a node starting finds it.
	orphan := orphanRoom(t, store, "r2")

	b := startServer(t, failoverConfig(t, endpoint, "node-b", hook))
	poll.Until(t, "node-b to take the orphan room over", func() bool { return leaveReasons(t, b, orphan)["gone"] != "" })
	if got := leaveReasons(t, b, orphan)["gone"]; got != string(actors.ReasonNodeLost) {
		t.Fatalf("the orphan room's member left for %q, want %q", got, actors.ReasonNodeLost)
	}
	if now := sessionInProgress(t, b, "r2"); now != orphan {
		t.Fatalf("r2's session in progress: %s, want %s going on", now, orphan)
	}
	if owner, err := store.Owner(t.Context(), "r2"); err != nil || owner != "node-b" {
		t.Fatalf("owner of r2: %q %v, want node-b (the node that started)", owner, err)
	}

	// node-b has scanned: node-a's room is as it was.
	if now := sessionInProgress(t, b, "r1"); now != ses {
		t.Fatalf("r1's session in progress: %s, want %s", now, ses)
	}
	if got := leaveReasons(t, b, ses); len(got) != 1 || got["ann"] != "" {
		t.Fatalf("r1's history after node-b started: %v, want ann present", got)
	}
	if owner, err := store.Owner(t.Context(), "r1"); err != nil || owner != "node-a" {
		t.Fatalf("owner of r1: %q %v, want node-a", owner, err)
	}
	if got := participantIdentities(t, a, "r1"); len(got) != 1 || got[0] != "ann" {
		t.Fatalf("participants on node-a: %v, want ann", got)
	}
}

// twoNodes is two nodes of one cluster, a and b, and publisher ann in room
// r1 on node-a, in session ses.
type twoNodes struct {
	endpoint string
	hook     string // the webhook endpoint of every room's events
	a, b     *testServer
	store    *etcdstore.Store // read as a tool does
	ses      string
}

func startTwoNodes(t *testing.T) twoNodes {
	t.Helper()
	endpoint := etcdStart(t)
	hook := refusingReceiver(t)
	n := twoNodes{endpoint: endpoint, hook: hook,
		a: startServer(t, failoverConfig(t, endpoint, "node-a", hook)),
		b: startServer(t, failoverConfig(t, endpoint, "node-b", hook)),
	}
	n.store = plainStore(t, endpoint)
	createOn(t, n.a, "r1")
	publish(t, n.a, "r1", "ann")
	n.ses = sessionInProgress(t, n.b, "r1")
	return n
}

// A node that loses its lease while it runs (cut off from etcd for longer
// than the TTL) stops its rooms at once, but can no longer write them: its
// members' leaves are refused by the fence. Of the nodes that race to take
// the room over (the two others, and the cut-off node once it registered
// again), one runs it and closes the member, once, with node-lost; the
// others forward the room's requests to it.
func TestFailoverAfterLeaseLoss(t *testing.T) {
	n := startTwoNodes(t)
	c := startServer(t, failoverConfig(t, n.endpoint, "node-c", n.hook))
	nodes := map[string]*testServer{"node-a": n.a, "node-b": n.b, "node-c": c}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{n.endpoint}, DialTimeout: poll.Timeout, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	// etcd ends node-a's lease, as when it expires after a cut.
	owner, err := cli.Get(t.Context(), "troupe/owner/r1")
	if err != nil || len(owner.Kvs) != 1 {
		t.Fatalf("owner key of r1: %v %v", owner, err)
	}
	if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(owner.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "a node to close ann's record", func() bool { return leaveReasons(t, n.b, n.ses)["ann"] != "" })
	if got := leaveReasons(t, n.b, n.ses)["ann"]; got != string(actors.ReasonNodeLost) {
		t.Fatalf("ann left for %q, want %q", got, actors.ReasonNodeLost)
	}
	poll.Until(t, "node-a to register again", func() bool {
		list, _ := n.b.mustDo(200, "GET", "/api/v1/cluster/nodes", "")["nodes"].([]any)
		return len(list) == 3
	})
	taker, err := n.store.Owner(t.Context(), "r1")
	if err != nil || nodes[taker] == nil {
		t.Fatalf("owner of r1 after the takeover: %q %v", taker, err)
	}
	for id, s := range nodes {
		want := "0"
		if id == taker {
			want = "1"
		}
		poll.Until(t, id+" to run "+want+" room actors", func() bool { return roomActors(t, s) == want })
		if got := participantIdentities(t, s, "r1"); len(got) != 0 {
			t.Fatalf("participants of r1 through %s: %v, want none", id, got)
		}
	}
	if left := leftEvents(t, n.store, n.ses); len(left) != 1 || left[0]["reason"] != string(actors.ReasonNodeLost) {
		t.Fatalf("participant-left events in the outbox: %v, want one with %q", left, actors.ReasonNodeLost)
	}
	t.Logf("r1 taken over by %s", taker)
}

// A node that stops in order tells its members (server-shutdown, recorded)
// and does not release its rooms one by one: they go with its lease, so
// that another node takes over a room whose session is in progress and
// runs its timers, as for a lost node, with nothing left to close.
func TestFailoverNodeStopHandsOverItsSessions(t *testing.T) {
	n := startTwoNodes(t)
	a, b, store, ses := n.a, n.b, n.store, n.ses

	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if got := leaveReasons(t, b, ses)["ann"]; got != string(actors.ReasonServerShutdown) {
		t.Fatalf("ann left for %q, want %q", got, actors.ReasonServerShutdown)
	}
	poll.Until(t, "node-b to take r1 over", func() bool { return roomActors(t, b) == "1" })
	if owner, err := store.Owner(t.Context(), "r1"); err != nil || owner != "node-b" {
		t.Fatalf("owner of r1: %q %v, want node-b", owner, err)
	}
	if now := sessionInProgress(t, b, "r1"); now != ses {
		t.Fatalf("r1's session in progress: %s, want %s going on", now, ses)
	}
	if left := leftEvents(t, store, ses); len(left) != 1 || left[0]["reason"] != string(actors.ReasonServerShutdown) {
		t.Fatalf("participant-left events: %v, want ann's one, server-shutdown", left)
	}
}
