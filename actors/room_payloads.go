package actors

// This file owns the JSON payloads of the room's webhook events.

import (
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Webhook payloads: what a receiver needs without calling back.

type roomEventData struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Status      string `json:"status"`
}

func roomData(r *recordpb.Room) roomEventData {
	status := "active"
	if r.Status == recordpb.RoomStatus_ROOM_STATUS_ENDED {
		status = "ended"
	}
	return roomEventData{ID: r.Id, Name: r.Name, DisplayName: r.DisplayName, Status: status}
}

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
	if s.EndTime != nil {
		end := s.EndTime.AsTime()
		secs := int64(end.Sub(d.StartTime) / time.Second)
		d.EndTime, d.Duration = &end, &secs
	}
	return d
}

type participantEventData struct {
	ParticipantID string     `json:"participant_id"`
	Identity      string     `json:"identity"`
	Name          string     `json:"name"`
	Role          string     `json:"role"`
	JoinedAt      time.Time  `json:"joined_at"`
	LeftAt        *time.Time `json:"left_at,omitempty"`
	Reason        string     `json:"reason,omitempty"`
}

func participantData(info ParticipantInfo, m *recordpb.SessionMember) participantEventData {
	d := participantEventData{ParticipantID: info.ID, Identity: info.Identity, Name: info.Name, Role: string(info.Role),
		JoinedAt: info.JoinedAt, Reason: m.GetLeaveReason()}
	if m.GetLeftAt() != nil {
		t := m.LeftAt.AsTime()
		d.LeftAt = &t
	}
	return d
}

type trackEventData struct {
	ParticipantID string `json:"participant_id"`
	Identity      string `json:"identity"`
	TrackID       string `json:"track_id"`
	Kind          string `json:"kind,omitempty"`
	Codec         string `json:"codec,omitempty"`
}
