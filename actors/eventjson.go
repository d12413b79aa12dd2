package actors

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Troupe describes rooms and sessions from two places: the data of its
// webhook events, built by the room actors, and the API's replies, built
// by httpapi. Where both describe the same thing, its fields are declared
// here once and both embed them first, so that a receiver finds the same
// names, in the same order, meaning the same. The shapes around them
// differ on purpose (the API renders null what an event leaves out) and
// stay with their builders.

// RoomHead is a room's identity and status: the whole data of the room
// events, and the first fields of the API's room object.
type RoomHead struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Status      string `json:"status"`
}

// NewRoomHead is r's head.
func NewRoomHead(r *recordpb.Room) RoomHead {
	return RoomHead{ID: r.GetId(), Name: r.GetName(), DisplayName: r.GetDisplayName(), Status: roomStatusName(r.GetStatus())}
}

// roomStatusName spells a room status as the API documents it. Every
// stored room is active or ended; "unknown" would be a record this build
// cannot read.
func roomStatusName(s recordpb.RoomStatus) string {
	switch s {
	case recordpb.RoomStatus_ROOM_STATUS_ACTIVE:
		return "active"
	case recordpb.RoomStatus_ROOM_STATUS_ENDED:
		return "ended"
	}
	return "unknown"
}

// StayHead is who stayed in a session and since when: the first fields of
// the participant events, and of each stay in the API's session history.
type StayHead struct {
	ParticipantID string    `json:"participant_id"`
	Identity      string    `json:"identity"`
	Name          string    `json:"name"`
	Role          string    `json:"role"`
	JoinedAt      time.Time `json:"joined_at"`
	// Hidden: the participant joined hidden (not shown to the others, not
	// counted).
	Hidden bool `json:"hidden"`
	// Metadata is the participant's, as last set.
	Metadata string `json:"metadata"`
}

// GrantsJSON is what a participant may do, as the API's participant
// object and the participant-updated event have it: publish_sources lists
// every source it may publish (none without publish).
type GrantsJSON struct {
	Publish        bool     `json:"publish"`
	PublishSources []string `json:"publish_sources"`
	Subscribe      bool     `json:"subscribe"`
	PublishData    bool     `json:"publish_data"`
	Hidden         bool     `json:"hidden"`
}

// NewGrantsJSON is g's JSON.
func NewGrantsJSON(g Grants) GrantsJSON {
	out := GrantsJSON{Publish: g.Publish, Subscribe: g.Subscribe, PublishData: g.PublishData, Hidden: g.Hidden, PublishSources: []string{}}
	for _, s := range g.Sources() {
		out.PublishSources = append(out.PublishSources, string(s))
	}
	return out
}

// Ended returns when something that began at start ended, and how long it
// lasted in whole seconds, as sessions and stays report them: both nil
// while it goes on (end unset).
func Ended(start time.Time, end *timestamppb.Timestamp) (at *time.Time, seconds *int64) {
	if end == nil {
		return nil, nil
	}
	t := end.AsTime()
	secs := int64(t.Sub(start) / time.Second)
	return &t, &secs
}
