package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// A WebSocket whose join comes as its first message, through a node that
// does not own the room, is relayed to the owner: the joiner gets the
// owner's joined message and the publisher's media, the node in between
// runs no room, and the nodes list counts the participants and the track
// forwarded.
func TestFirstMessageJoinRelayedToOwner(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one"}`)
	token := func(identity, role string) string {
		got := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"`+identity+`","role":"`+role+`"}`)
		return got["token"].(string)
	}
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a bound against a hang
	defer cancel()

	pub, err := client.Dial(ctx, client.Config{URL: a.url, Token: token("pub", "publisher"), API: api})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	senders, err := pub.Publish(ctx, track)
	if err != nil {
		t.Fatal(err)
	}
	sender := &rtctest.Sender{Track: track, PayloadSize: 600, KeyframeEvery: 10, TimestampStep: 3000}
	go sender.ServeKeyframeRequests(senders[0])
	sendCtx, stopSending := context.WithCancel(ctx)
	sent := make(chan error, 1)
	go func() { sent <- sender.Run(sendCtx, 0, 10*time.Millisecond) }()
	defer func() {
		stopSending()
		if err := <-sent; err != nil {
			t.Errorf("send: %v", err)
		}
	}()

	received := make(chan *rtctest.Receiver, 1)
	var joined string
	sub, err := client.Dial(ctx, client.Config{
		URL: b.url, Token: token("sub", "subscriber"), API: api, JoinMessage: true,
		OnMessage: func(msg []byte) {
			if joined == "" {
				joined = string(msg)
			}
		},
		OnTrack: func(tr *webrtc.TrackRemote) {
			r := rtctest.NewReceiver(tr)
			received <- r
			r.Run()
		},
	})
	if err != nil {
		t.Fatalf("join through node-b in the first message: %v", err)
	}
	defer sub.Close()
	if !strings.Contains(joined, `"type":"joined"`) || !strings.Contains(joined, `"id":"r1"`) || !strings.Contains(joined, `"node_id":"node-a"`) {
		t.Fatalf("first message through node-b: %s", joined)
	}
	var r *rtctest.Receiver
	select {
	case r = <-received:
	case err := <-sent:
		sent <- err // for the deferred check
		t.Fatal("the publisher stopped sending")
	case <-ctx.Done():
		t.Fatal("no track reached the subscriber through node-b")
	}
	poll.Until(t, "media through the relayed join", func() bool { return r.Stats().Packets >= 50 })
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"pub", "sub"}) {
		t.Fatalf("participants on node-a: %v", got)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
	poll.Until(t, "the nodes list to count the room's members", func() bool {
		n := listNodes(t, b)
		return loads(n) == "node-a:1/2/1=4 node-b:0/0/0=0"
	})

	// The owner's close reaches the client through the relay: kicked.
	b.mustDo(204, "DELETE", "/api/v1/rooms/r1/participants/"+sub.ParticipantID(), "")
	select {
	case <-sub.Done():
	case <-ctx.Done():
		t.Fatal("the kicked subscriber's socket stayed open")
	}
	if code := websocket.CloseStatus(sub.Err()); code != websocket.StatusNormalClosure || !strings.Contains(sub.Err().Error(), "kicked") {
		t.Fatalf("the kicked subscriber's socket ended with %v", sub.Err())
	}
	poll.Until(t, "sub to be gone from node-a's room", func() bool {
		return slices.Equal(participantIdentities(t, a, "r1"), []string{"pub"})
	})
}

// A relayed join the owner refuses ends the client's socket with the
// owner's error and close code; a relayed socket closed by the client
// makes its participant leave the owner's room; a socket relayed once is
// never relayed again.
func TestFirstMessageJoinRelayClose(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	a.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"one","config":{"locked":true}}`)
	tok := b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"alice","role":"subscriber"}`)["token"].(string)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	ws, msg := b.join(ctx, tok, nil)
	if !strings.Contains(string(msg), `"code":"room_locked"`) {
		t.Fatalf("answer to a join of a locked room through node-b: %s", msg)
	}
	_, _, err := ws.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4409 || ce.Reason != "room_locked" {
		t.Fatalf("close of a refused relayed join: %v, want 4409 room_locked", err)
	}

	a.mustDo(200, "PATCH", "/api/v1/rooms/r1", `{"config":{"locked":false}}`)
	ws, msg = b.join(ctx, tok, nil)
	if !strings.Contains(string(msg), `"type":"joined"`) {
		t.Fatalf("answer to a join through node-b: %s", msg)
	}
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("participants on node-a: %v", got)
	}
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "alice to leave node-a's room", func() bool { return len(participantIdentities(t, a, "r1")) == 0 })

	// Relayed already: node-b answers itself rather than relay again.
	ws, msg = b.join(ctx, tok, b.forwardedBy(http.Header{}, "node-x", "GET", "/rtc"))
	if !strings.Contains(string(msg), `"code":"room_unavailable"`) {
		t.Fatalf("answer to a join relayed once already: %s", msg)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != 4503 {
		t.Fatalf("close of a join relayed once already: %v, want 4503", err)
	}
}

// A relayed join that reaches a node that does not own the room (it
// heard wrong) is refused there with the owner's name, between nodes, and
// a hint to retry; the client never sees the name.
func TestRelayedJoinRefusalNamesTheOwner(t *testing.T) {
	_, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	createOn(t, a, "r1")
	tok := joinToken(t, a, "r1", "alice", "subscriber")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	_, msg := b.join(ctx, tok, b.forwardedBy(http.Header{}, "node-x", "GET", "/rtc"))
	var refusal struct {
		Type, Code, Owner string
		RetryAfterMs      int `json:"retry_after_ms"`
	}
	if err := json.Unmarshal(msg, &refusal); err != nil {
		t.Fatal(err)
	}
	if refusal.Type != "error" || refusal.Code != "room_unavailable" || refusal.Owner != "node-a" || refusal.RetryAfterMs <= 0 {
		t.Fatalf("a forwarded join on node-b of node-a's room: %s", msg)
	}
	if got := roomActors(t, b); got != "0" {
		t.Errorf("node-b runs %s room actors, want 0", got)
	}
}

// A join relayed to a node that no longer owns the room (it released it
// just before the join came, and another node claimed it) goes once more,
// to the owner that node names, and the client joins there. The node
// relayed to first stands for a node whose owner key the relaying node's
// hint still had: a WebSocket server that owns r1 until a join comes.
func TestRelayedJoinStaleOwnerRetried(t *testing.T) {
	endpoint, nodes := startCluster(t, "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	hits := staleOwner(t, endpoint, a, func(w http.ResponseWriter, r *http.Request, handOver func() string) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer ws.CloseNow()
		if _, _, err := ws.Read(r.Context()); err != nil {
			t.Errorf("read the join: %v", err)
			return
		}
		refusal := `{"type":"error","code":"room_unavailable","message":"moved","request":"join","owner":"` + handOver() + `"}`
		if err := ws.Write(r.Context(), websocket.MessageText, []byte(refusal)); err != nil {
			t.Errorf("write the refusal: %v", err)
		}
		_ = ws.Close(4503, "room_unavailable")
	})
	tok, err := auth.Mint(auth.Key{ID: "TKcluster", Secret: strings.Repeat("s", 32)},
		auth.JoinClaims(time.Now(), time.Hour, "r1", "alice", "Alice", auth.RoleSubscriber))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	var first string
	sub, err := client.Dial(ctx, client.Config{URL: b.url, Token: tok, API: api, JoinMessage: true,
		OnMessage: func(msg []byte) {
			if first == "" {
				first = string(msg)
			}
		},
	})
	if err != nil {
		t.Fatalf("join r1 through node-b: %v", err)
	}
	defer sub.Close()
	if !strings.Contains(first, `"type":"joined"`) || !strings.Contains(first, `"node_id":"node-a"`) {
		t.Fatalf("first message through node-b: %s", first)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the old owner got %d sockets, want 1", n)
	}
	if got := participantIdentities(t, a, "r1"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("participants on node-a: %v", got)
	}
}
