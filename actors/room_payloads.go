package actors

// This file owns the JSON payloads of the room's webhook events.

import (
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Webhook payloads: what a receiver needs without calling back.

// roomData is a room event's data: the room's head, as in the API.
func roomData(r *recordpb.Room) RoomHead { return NewRoomHead(r) }

type sessionEventData struct {
	SessionID                 string     `json:"session_id"`
	StartTime                 time.Time  `json:"start_time"`
	EndTime                   *time.Time `json:"end_time,omitempty"`
	Duration                  *int64     `json:"duration,omitempty"` // seconds
	EndReason                 string     `json:"end_reason,omitempty"`
	TotalParticipants         uint32     `json:"total_participants"`
	MaxConcurrentParticipants uint32     `json:"max_concurrent_participants"`
}

func sessionData(s *recordpb.Session) sessionEventData {
	d := sessionEventData{SessionID: s.Id, StartTime: s.StartTime.AsTime(), EndReason: s.EndReason,
		TotalParticipants: s.TotalParticipants, MaxConcurrentParticipants: s.MaxConcurrentParticipants}
	d.EndTime, d.Duration = Ended(d.StartTime, s.EndTime)
	return d
}

type participantEventData struct {
	StayHead
	LeftAt *time.Time `json:"left_at,omitempty"`
	Reason string     `json:"reason,omitempty"`
	// Grants are the participant's grants, in participant-updated.
	Grants *GrantsJSON `json:"grants,omitempty"`
}

func participantData(info ParticipantInfo, m *recordpb.SessionMember) participantEventData {
	d := participantEventData{StayHead: StayHead{ParticipantID: string(info.ID), Identity: info.Identity, Name: info.Name,
		Role: string(info.Role), JoinedAt: info.JoinedAt, Hidden: info.Grants.Hidden, Metadata: info.Metadata}, Reason: m.GetLeaveReason()}
	d.LeftAt, _ = Ended(info.JoinedAt, m.GetLeftAt())
	return d
}

type trackEventData struct {
	ParticipantID string `json:"participant_id"`
	Identity      string `json:"identity"`
	TrackID       string `json:"track_id"`
	Kind          string `json:"kind,omitempty"`
	Codec         string `json:"codec,omitempty"`
}
