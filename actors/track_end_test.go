package actors

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// liveTracks is the number of tracks the room lists for participant id.
func liveTracks(env *testEnv, room RoomID, id ParticipantID) int {
	list, err := env.rooms.Participants(context.Background(), room)
	if err != nil {
		return -1
	}
	for _, p := range list {
		if p.ID == id {
			return len(p.Tracks)
		}
	}
	return -1
}

// videoBatch is n VP8 tracks a test client publishes and then removes.
type videoBatch struct {
	c       *testClient
	senders []*rtctest.Sender
	rtp     []*webrtc.RTPSender
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// publishVideo publishes n VP8 tracks and sends on them until unpublish.
func publishVideo(t *testing.T, c *testClient, n int) *videoBatch {
	t.Helper()
	b := &videoBatch{c: c}
	tracks := make([]webrtc.TrackLocal, n)
	for i := range tracks {
		vt, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, fmt.Sprintf("v%d", i), string(c.p.ID))
		if err != nil {
			t.Fatal(err)
		}
		tracks[i] = vt
		b.senders = append(b.senders, &rtctest.Sender{Track: vt, PayloadSize: 600, KeyframeEvery: 10, TimestampStep: 3000})
	}
	got := make(chan []*webrtc.RTPSender, 1)
	c.queue <- publishCmd{tracks: tracks, senders: got}
	select {
	case b.rtp = <-got:
	case <-time.After(poll.Timeout):
		t.Fatal("the client did not add its tracks")
	}
	ctx, cancel := context.WithCancel(c.ctx)
	b.stop = cancel
	for _, s := range b.senders {
		b.wg.Go(func() { _ = s.Run(ctx, 0, 10*time.Millisecond) })
	}
	t.Cleanup(b.halt)
	return b
}

func (b *videoBatch) halt() { b.stop(); b.wg.Wait() }

// unpublish stops sending and removes the tracks from the client's
// connection, which ends them on the server.
func (b *videoBatch) unpublish() {
	b.halt()
	b.c.queue <- unpublishCmd{senders: b.rtp}
}

// A track the client stops sending leaves its participant: a mute of it
// is refused and broadcasts nothing, while the live tracks still mute.
func TestEndedTrackIsNotMuted(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	watcher := joinClient(t, env, "r", "watcher", RoleSubscriber)
	pub.publishAV()
	poll.Until(t, "audio and video published", func() bool { return liveTracks(env, "r", pub.p.ID) == 2 })
	b := publishVideo(t, pub, 1)
	poll.Until(t, "a third track", func() bool { return liveTracks(env, "r", pub.p.ID) == 3 })
	var ended TrackID
	for _, p := range mustParticipants(t, env, "r") {
		if p.ID == pub.p.ID {
			ended = p.Tracks[2].ID
		}
	}
	b.unpublish()
	waitEvent[SignalTrackUnpublished](t, watcher, func(e SignalTrackUnpublished) bool { return e.TrackID == ended })

	if err := pub.p.SetMuted(ctx, ended, "", true); !errors.Is(err, ErrSignalingState) {
		t.Fatalf("mute of an ended track: %v, want %v", err, ErrSignalingState)
	}
	// Muting video by kind mutes the live camera only, and the room says
	// so once: a broadcast about the ended track would come first.
	if err := pub.p.SetMuted(ctx, "", "video", true); err != nil {
		t.Fatal(err)
	}
	m := waitEvent[SignalTrackMuted](t, watcher, nil)
	if m.TrackID == ended {
		t.Fatalf("the room broadcast a mute of the ended track %s", ended)
	}
	if n := liveTracks(env, "r", pub.p.ID); n != 2 {
		t.Fatalf("the publisher lists %d tracks, want 2", n)
	}
}

func mustParticipants(t *testing.T, env *testEnv, room RoomID) []ParticipantInfo {
	t.Helper()
	list, err := env.rooms.Participants(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// heapAfterGC returns the heap in use and its live objects after a full
// collection.
func heapAfterGC() (inuse, objects uint64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the first one runs the finalizers that free what the second takes
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapObjects
}

// 100 video tracks published and ended one batch after another leave the
// heap as it was: an ended track's forwarder, with its 768 KiB packet
// cache, and its subscribers' down-tracks are let go at once, not when
// their participants leave. Their packets stay in the session's figures.
func TestEndedTracksFreeTheirMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 100 tracks")
	}
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	sub := joinClient(t, env, "r", "sub", RoleSubscriber)
	const batches, perBatch = 10, 10

	var inuse0, objects0 uint64
	var lastIn uint64
	for i := range batches {
		b := publishVideo(t, pub, perBatch)
		poll.Until(t, "a batch published", func() bool { return liveTracks(env, "r", pub.p.ID) == perBatch })
		for range perBatch {
			select {
			case tr := <-sub.tracks:
				go rtctest.NewReceiver(tr).Run()
			case <-time.After(30 * time.Second):
				t.Fatal("the subscriber did not get the batch")
			}
		}
		poll.Until(t, "packets forwarded", func() bool { return sessionMedia(t, env, "r", pub.p.ID).PacketsIn > lastIn+perBatch*10 })
		before := sessionMedia(t, env, "r", pub.p.ID)
		b.unpublish()
		poll.Until(t, "a batch ended", func() bool { return liveTracks(env, "r", pub.p.ID) == 0 })
		for range perBatch {
			waitEvent[SignalTrackUnpublished](t, sub, nil)
		}
		after := sessionMedia(t, env, "r", pub.p.ID)
		if after.PacketsIn < before.PacketsIn || after.BytesIn < before.BytesIn {
			t.Fatalf("ended tracks' packets lost from the session: in %d -> %d packets", before.PacketsIn, after.PacketsIn)
		}
		lastIn = after.PacketsIn
		if i == 0 {
			// The first batch warms up what stays: pion's transceivers,
			// pools, the metrics' label sets.
			inuse0, objects0 = heapAfterGC()
		}
	}
	inuse, objects := heapAfterGC()
	t.Logf("heap after the first batch: %d KiB in use, %d objects; after %d tracks: %d KiB, %d objects",
		inuse0>>10, objects0, batches*perBatch, inuse>>10, objects)
	// 90 leaked video forwarders would hold 90 x 768 KiB = 67 MiB in
	// packet caches alone.
	const bound = 16 << 20
	if inuse > inuse0+bound {
		t.Fatalf("the heap grew by %d KiB over %d ended tracks (bound %d KiB)", (inuse-inuse0)>>10, (batches-1)*perBatch, bound>>10)
	}
	if sessionMedia(t, env, "r", sub.p.ID).PacketsOut == 0 {
		t.Fatal("the subscriber's session figures lost the ended tracks' packets")
	}
}

// sessionMedia returns a participant's media figures in the room's
// running session.
func sessionMedia(t *testing.T, env *testEnv, room RoomID, id ParticipantID) *recordpb.MediaStats {
	t.Helper()
	info, err := env.rooms.Get(context.Background(), room)
	if err != nil {
		t.Fatal(err)
	}
	stats, err := env.rooms.SessionStats(context.Background(), SessionID(info.Room.ActiveSessionId))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stats {
		if p.ParticipantID == id {
			return p.Media
		}
	}
	t.Fatalf("no session figures for %s", id)
	return nil
}
