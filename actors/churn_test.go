package actors

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
)

// roomChurnGuests is how many guests pass through the room: a few by
// default, soakRoomChurnGuests with TROUPE_SOAK=1, or
// TROUPE_CHURN_CYCLES.
const (
	roomChurnGuests     = 8
	soakRoomChurnGuests = 200
)

func roomChurnCycles(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("TROUPE_CHURN_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TROUPE_CHURN_CYCLES=%q: want a number of cycles", v)
		}
		return n
	}
	if os.Getenv("TROUPE_SOAK") == "1" {
		return soakRoomChurnGuests
	}
	return roomChurnGuests
}

// A room whose session never ends (someone is always there) gives back
// all it held for each guest that came and went, however it went: its
// tables of members, tracks, subscriptions, session entries and timers,
// joins, hands, chat limits and speaker levels, and the actor system's
// registry of processes, come back to what they were before the guests.
func TestRoomChurnLeavesNothing(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "hall", nil)
	host := joinClient(t, env, "hall", "host", RolePublisher)
	host.publishAV()
	drainClient(t, host)

	leaves := []struct {
		reason LeaveReason
		leave  func(c *testClient)
	}{
		{ReasonLeft, func(c *testClient) { _ = c.p.Leave(context.Background(), ReasonLeft) }},
		{ReasonKicked, func(c *testClient) {
			if err := env.rooms.Kick(context.Background(), "hall", c.p.ID); err != nil {
				t.Errorf("kick %s: %v", c.p.ID, err)
			}
		}},
		// The client closes its peer connection (its DTLS close).
		{ReasonDisconnected, func(c *testClient) { _ = c.pc.Close() }},
	}
	guest := func(i int) {
		t.Helper()
		c := joinClient(t, env, "hall", fmt.Sprintf("guest-%d", i), RolePublisher)
		c.publishAV()
		readVideo(t, c, 10)
		if err := c.p.RaiseHand(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if _, err := env.rooms.SendChat(context.Background(), "hall", "host", "welcome"); err != nil {
			t.Fatal(err)
		}
		l := leaves[i%len(leaves)]
		l.leave(c)
		c.waitRemoved(l.reason)
		c.cancel() // its loop and its media stop
		<-c.done
	}

	guest(0) // what lives as long as the room is made by the first
	quiet := func(want *roomCounts, wantPIDs int) (*roomCounts, int) {
		t.Helper()
		var got *roomCounts
		var pids int
		settled := false
		defer func() {
			if !settled && got != nil {
				t.Logf("the room held %+v and the system %d processes; want %+v and at most %d", *got, pids, want, wantPIDs)
			}
		}()
		poll.Until(t, "the room back to its state before the guests", func() bool {
			var err error
			got, err = requestAs[*roomCounts](context.Background(), env.rooms, "hall", &countRoom{})
			if err != nil {
				t.Fatal(err)
			}
			pids = processCount(env.rooms)
			alone := got.Members == 1 && got.Joins == 0 && got.Hands == 0 && got.Tracks == 2 &&
				got.SpeakerUpdates <= 1 // the host's audio, once sampled after the last guest left
			same := want == nil
			if !same {
				g, w := *got, *want
				g.SpeakerUpdates, w.SpeakerUpdates = 0, 0
				same = g == w && pids <= wantPIDs
			}
			settled = alone && same
			return settled
		})
		return got, pids
	}
	base, basePIDs := quiet(nil, 0)
	t.Logf("with the host alone: %+v, %d processes", *base, basePIDs)

	n := roomChurnCycles(t)
	for i := 1; i <= n; i++ {
		guest(i)
	}
	got, pids := quiet(base, basePIDs)
	sections := len(host.pc.GetTransceivers())
	t.Logf("after %d guests: %+v, %d processes; the host has %d sections", n, *got, pids, sections)
	// The host's two and the sections of the guests' two tracks, freed as
	// each guest goes and taken again by the next one's (a guest that
	// comes before its predecessor's going was negotiated takes new ones):
	// not a section for every track that ever came.
	if sections > 2+2*2 {
		t.Errorf("the host's connection has %d sections after %d guests with two tracks each, one at a time", sections, n)
	}
	if live := env.rooms.LiveParticipants(); live != 1 {
		t.Errorf("%d participants live, want the host alone", live)
	}
}

// readVideo reads n packets of the first video track c receives, on the
// test's goroutine: a guest's tracks are read by nobody once it is gone.
func readVideo(t *testing.T, c *testClient, n int) {
	t.Helper()
	deadline := time.Now().Add(poll.Timeout) // a bound on a failure
	for {
		select {
		case tr := <-c.tracks:
			if tr.Kind() != webrtc.RTPCodecTypeVideo {
				continue
			}
			if err := tr.SetReadDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			for range n {
				if _, _, err := tr.ReadRTP(); err != nil {
					t.Fatalf("%s reads the host's video: %v", c.p.ID, err)
				}
			}
			return
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%s got no video track", c.p.ID)
		}
	}
}

// drainClient takes every track c receives and every event it is told of
// until the test ends, so that a client that sees many others come and go
// never blocks its OnTrack or its loop on a full channel.
func drainClient(t *testing.T, c *testClient) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-c.tracks: // left unread: pion drops what its buffer cannot hold
			case <-c.events:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// processCount counts the processes (actors, futures) the actor system
// of r has registered.
func processCount(r *Rooms) int {
	n := 0
	for _, m := range r.system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += m.Count()
	}
	return n
}
