package actors

import (
	"context"
	"testing"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

func TestJoinsVideoOff(t *testing.T) {
	for _, tt := range []struct {
		room, user bool
		role       Role
		want       bool
	}{
		{false, false, RolePublisher, false},
		{true, false, RolePublisher, true},
		{true, false, RoleModerator, true},
		{false, true, RolePublisher, true},
		{false, true, RoleSubscriber, true},
		{false, true, RoleModerator, false},
	} {
		c := &recordpb.RoomConfig{RoomJoinVideoOff: tt.room, UserJoinVideoOff: tt.user}
		if got := joinsVideoOff(c, tt.role); got != tt.want {
			t.Errorf("room %v user %v %s: %v, want %v", tt.room, tt.user, tt.role, got, tt.want)
		}
	}
}

// A participant that joins with its camera off is told so, its video
// starts muted by the server (audio is left alone), and once it unmutes
// the video itself the server leaves it on.
func TestJoinWithVideoOff(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", &actorpb.ConfigPatch{UserJoinVideoOff: ptr(true)})
	mod := joinClient(t, env, "r", "host", RoleModerator)
	if mod.info.VideoOff {
		t.Fatal("a moderator joins with video off under user_join_video_off")
	}
	pub := joinClient(t, env, "r", "alice", RolePublisher)
	if !pub.info.VideoOff {
		t.Fatal("joined does not say video_off")
	}
	pub.publishAV()
	m := waitEvent(t, pub, func(m SignalTrackMuted) bool { return m.Muted })
	if !m.ByServer {
		t.Fatalf("video muted %+v, want by the server", m)
	}
	var video TrackInfo
	list, err := env.rooms.Participants(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		for _, tr := range p.Tracks {
			if p.ID == pub.p.ID && tr.Muted != (tr.Kind == "video") {
				t.Fatalf("track %+v after a video-off join", tr)
			}
			if p.ID == pub.p.ID && tr.Kind == "video" {
				video = tr
			}
		}
	}
	if video.ID != m.TrackID {
		t.Fatalf("muted track %s, want the video %s", m.TrackID, video.ID)
	}
	if err := pub.p.SetMuted(ctx, video.ID, "", false); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pub, func(m SignalTrackMuted) bool { return !m.Muted && !m.ByServer })
}
