package actors

import (
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// A member who leaves unpublishes every track it had, however many: each
// other member is told of each one before it is told the member left.
func TestLeavingUnpublishesEveryTrack(t *testing.T) {
	env := newMediaEnv(t, nil)
	createRoom(t, env, "r", nil)
	pub := joinClient(t, env, "r", "pub", RolePublisher)
	watcher := joinClient(t, env, "r", "watcher", RoleSubscriber)
	pub.publishAV()
	// One offer at a time: the second batch once the first is in.
	poll.Until(t, "audio and video published", func() bool { return liveTracks(env, "r", pub.p.ID) == 2 })
	publishVideo(t, pub, 2)
	poll.Until(t, "four tracks published", func() bool { return liveTracks(env, "r", pub.p.ID) == 4 })
	var want []TrackID
	for _, p := range mustParticipants(t, env, "r") {
		if p.ID == pub.p.ID {
			for _, tr := range p.Tracks {
				want = append(want, tr.ID)
			}
		}
	}

	pub.leave()
	var got []TrackID
	for {
		s := waitEvent(t, watcher, func(s Signal) bool {
			switch e := s.(type) {
			case SignalTrackUnpublished:
				return e.ParticipantID == pub.p.ID
			case SignalParticipantLeft:
				return e.ParticipantID == pub.p.ID
			}
			return false
		})
		e, ok := s.(SignalTrackUnpublished)
		if !ok {
			break // it left
		}
		got = append(got, e.TrackID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tracks unpublished when their publisher left: %v, want %v", got, want)
	}
}
