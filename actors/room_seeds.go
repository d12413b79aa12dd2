package actors

// This file owns what the room's SignalWire fields do beyond validation:
// joining with the camera off (room_join_video_off, user_join_video_off).
// remove_at is a session timer (room_session.go); the other fields are
// hints the clients read from the room in their joined message.

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// joinsVideoOff reports whether a participant of role joins with its
// camera off: everyone with room_join_video_off, all but moderators with
// user_join_video_off (SignalWire's "users", as against its moderators).
func joinsVideoOff(c *recordpb.RoomConfig, role Role) bool {
	return c.GetRoomJoinVideoOff() || (c.GetUserJoinVideoOff() && role != RoleModerator)
}

// startVideoOff mutes, by the server, a video track that a member who
// joined with its camera off publishes before it turns the camera on
// itself. Its client was told (JoinInfo.VideoOff) and shows the camera
// off; the others see the track muted.
func (a *roomActor) startVideoOff(ctx actor.Context, m *member, t TrackInfo) {
	if !m.videoOff || t.Kind != videoKind || t.Muted {
		return
	}
	ctx.Send(m.pid, &setMuted{trackID: t.ID, muted: true, byServer: true})
}

// videoTurnedOn ends a member's camera-off start once it unmutes a video
// track of its own accord: its later tracks publish as they come.
func (a *roomActor) videoTurnedOn(msg *trackMuted) {
	m, ok := a.members[msg.participantID]
	if !ok || !m.videoOff || msg.muted || msg.byServer {
		return
	}
	for _, t := range m.tracks {
		if t.info.ID == msg.trackID && t.info.Kind == videoKind {
			m.videoOff = false
		}
	}
}
