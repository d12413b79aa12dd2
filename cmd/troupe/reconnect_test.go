package main

import (
	"context"
	"log/slog"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// childOwnedRoom starts node-b in-process and node-a as a child process
// that owns room r1, for the test to kill node-a.
func childOwnedRoom(t *testing.T) (a, b *testServer, cmd *exec.Cmd) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a node as a child process")
	}
	endpoint := etcdStart(t)
	hook := refusingReceiver(t)
	b = startServer(t, failoverConfig(t, endpoint, "node-b", hook))
	a, cmd = startChildNode(t, failoverConfig(t, endpoint, "node-a", hook), b.token)
	createOn(t, a, "r1")
	return a, b, cmd
}

// reconnectingPublisher joins as cfg says, reconnecting through more, and
// sends video on every connection until the test ends.
func reconnectingPublisher(t *testing.T, ctx context.Context, cfg client.Config, more ...string) *client.Session {
	t.Helper()
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	sender := &rtctest.Sender{Track: track, PayloadSize: 600, KeyframeEvery: 10, TimestampStep: 3000}
	var wg sync.WaitGroup
	pub, err := client.Connect(ctx, cfg, client.Reconnect{URLs: more, OnConnect: func(ctx context.Context, c *client.Client) error {
		senders, err := c.Publish(ctx, track)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender.ServeKeyframeRequests(senders[0])
		}()
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	sendCtx, stopSending := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sender.Run(sendCtx, 0, 10*time.Millisecond); err != nil {
			t.Errorf("send: %v", err)
		}
	}()
	t.Cleanup(func() {
		stopSending()
		pub.Close()
		wg.Wait()
	})
	return pub
}

// The node that owns a room dies: a publisher that joined it directly and
// a subscriber that joined through the other node both join again by
// themselves, through the node that is left, once it took the room over,
// and the subscriber receives the publisher's video again.
func TestClientsRejoinAfterOwnerDies(t *testing.T) {
	a, b, cmd := childOwnedRoom(t)
	token := func(identity, role string) string {
		return b.mustDo(200, "POST", "/api/v1/rooms/r1/tokens", `{"identity":"`+identity+`","role":"`+role+`"}`)["token"].(string)
	}
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a bound against a hang
	defer cancel()

	pub := reconnectingPublisher(t, ctx, client.Config{URL: a.url, Token: token("pub", "publisher"), API: api, Logger: log}, b.url)
	var mu sync.Mutex
	var last *rtctest.Receiver
	sub, err := client.Connect(ctx, client.Config{
		URL: b.url, Token: token("sub", "subscriber"), API: api, Logger: log, JoinMessage: true,
		OnTrack: func(tr *webrtc.TrackRemote) {
			r := rtctest.NewReceiver(tr)
			mu.Lock()
			last = r
			mu.Unlock()
			r.Run()
		},
	}, client.Reconnect{URLs: []string{a.url}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	receiver := func() *rtctest.Receiver {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	poll.Until(t, "video before the kill", func() bool { r := receiver(); return r != nil && r.Stats().Packets >= 20 })
	before := receiver()

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	poll.Until(t, "video on a new connection through node-b", func() bool {
		r := receiver()
		return r != before && r.Stats().Packets >= 20
	})
	if got := participantIdentities(t, b, "r1"); len(got) != 2 {
		t.Errorf("participants after the rejoin: %v, want pub and sub", got)
	}
	ps, ss := pub.Stats(), sub.Stats()
	if ps.Reconnects < 1 || ss.Reconnects < 1 {
		t.Errorf("reconnections: publisher %+v, subscriber %+v; want both at least 1", ps, ss)
	}
	t.Logf("lease TTL %v: SIGKILL to media again: subscriber (join message through node-b) %v, publisher (token in the URL, on node-a then node-b) back in %v; reconnections %d and %d",
		failoverTTL, ss.Outage.Round(time.Millisecond), ps.Outage.Round(time.Millisecond), ss.Reconnects, ps.Reconnects)
}
