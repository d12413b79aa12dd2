// Package recordtest builds the records that the tests of persistence and
// of its conformance suite (persistence/storetest) store: rooms, sessions
// session members and recordings, placed in time from one epoch, in seconds.
//
// It is its own package because persistence's internal tests cannot import
// storetest, which imports persistence. Only tests import it.
package recordtest

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Epoch is the time the records are placed from.
var Epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// At returns Epoch plus sec seconds.
func At(sec int) *timestamppb.Timestamp {
	return timestamppb.New(Epoch.Add(time.Duration(sec) * time.Second))
}

// Room returns a room created at Epoch plus createdSec.
func Room(id string, st recordpb.RoomStatus, createdSec int) *recordpb.Room {
	return &recordpb.Room{
		Id:        id,
		Name:      "Room " + id,
		Status:    st,
		CreatedAt: At(createdSec),
		Config:    &recordpb.RoomConfig{MaxParticipants: 10, EmptyTimeout: 300},
	}
}

// Session returns a session of room roomID started at Epoch plus
// startSec; an ended one ended a minute later.
func Session(id, roomID string, st recordpb.SessionStatus, startSec int) *recordpb.Session {
	s := &recordpb.Session{
		Id:             id,
		RoomId:         roomID,
		Name:           "Room " + roomID,
		Status:         st,
		StartTime:      At(startSec),
		CreatedAt:      At(startSec),
		UpdatedAt:      At(startSec),
		LastActivityAt: At(startSec),
		MaxMembers:     10,
	}
	if st == recordpb.SessionStatus_SESSION_STATUS_ENDED {
		s.EndTime, s.EndReason = At(startSec+60), "ended-via-api"
	}
	return s
}

// Member returns a participant's stay in a session, joined at Epoch plus
// joinedSec.
func Member(sessionID, participantID string, joinedSec int) *recordpb.SessionMember {
	return &recordpb.SessionMember{
		SessionId:     sessionID,
		ParticipantId: participantID,
		Identity:      "user-" + participantID,
		Name:          "User " + participantID,
		Role:          "publisher",
		JoinedAt:      At(joinedSec),
	}
}

// Recording returns a recording of session sessionID of room roomID,
// created at Epoch plus createdSec; an ended one ended a minute later with
// one file.
func Recording(id, roomID, sessionID string, st recordpb.RecordingStatus, createdSec int) *recordpb.Recording {
	r := &recordpb.Recording{
		Id: id, RoomId: roomID, SessionId: sessionID, Status: st, Layout: "participant",
		CreatedAt: At(createdSec), UpdatedAt: At(createdSec),
	}
	if st != recordpb.RecordingStatus_RECORDING_STATUS_STARTING {
		r.StartedAt = At(createdSec)
	}
	if st == recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || st == recordpb.RecordingStatus_RECORDING_STATUS_FAILED {
		r.EndedAt, r.EndReason = At(createdSec+60), "stopped-via-api"
		r.Files = []*recordpb.RecordingFile{{Name: "PA_1.webm", ParticipantId: "PA_1", Identity: "user-PA_1",
			TrackIds: []string{"TR_a", "TR_v"}, Codecs: []string{"opus", "vp8"}, Container: "webm", Size: 4096, DurationMs: 60000}}
	}
	return r
}
