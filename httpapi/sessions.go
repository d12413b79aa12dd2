package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// sessionJSON is the session object of the API (openapi.json). Every field is always
// present; pointers render null where the session has no value (end_time,
// duration and end_reason while it is in progress).
type sessionJSON struct {
	ID                        string     `json:"id"`
	RoomID                    string     `json:"room_id"`
	Name                      string     `json:"name"`
	DisplayName               string     `json:"display_name"`
	Status                    string     `json:"status"`
	StartTime                 time.Time  `json:"start_time"`
	EndTime                   *time.Time `json:"end_time"`
	Duration                  *int64     `json:"duration"` // whole seconds
	EndReason                 *string    `json:"end_reason"`
	ParticipantCount          uint32     `json:"participant_count"`
	MaxConcurrentParticipants uint32     `json:"max_concurrent_participants"`
	TotalParticipants         uint32     `json:"total_participants"`
	MaxMembers                uint32     `json:"max_members"`
	Quality                   string     `json:"quality"`
	FPS                       uint32     `json:"fps"`
	JoinFrom                  *time.Time `json:"join_from"`
	JoinUntil                 *time.Time `json:"join_until"`
	RemoveAfterSecondsElapsed *uint32    `json:"remove_after_seconds_elapsed"`
	Layout                    string     `json:"layout"`
	RecordOnStart             bool       `json:"record_on_start"`
	Locked                    bool       `json:"locked"`
	RemoveAt                  *time.Time `json:"remove_at"`
	RoomJoinVideoOff          bool       `json:"room_join_video_off"`
	UserJoinVideoOff          bool       `json:"user_join_video_off"`
	PrioritizeHandraise       bool       `json:"prioritize_handraise"`
	SyncAudioVideo            bool       `json:"sync_audio_video"`
	ToneOnEntryAndExit        bool       `json:"tone_on_entry_and_exit"`
	EnableRoomPreviews        bool       `json:"enable_room_previews"`
	PreviewURL                *string    `json:"preview_url"` // always null: see configJSON
	CreatedAt                 time.Time  `json:"created_at"`
	UpdatedAt                 time.Time  `json:"updated_at"`
	// Recordings are the ids of its recordings, in the order they started.
	Recordings []string `json:"recordings"`
}

type sessionListJSON struct {
	Sessions []sessionJSON `json:"sessions"`
	Total    int           `json:"total"`
	Limit    int           `json:"limit"`
	Offset   int           `json:"offset"`
}

// The session statuses as the API spells them: SignalWire's words. The
// store keeps its own enum; only the API word is "completed".
const (
	sessionInProgress = "in-progress"
	sessionCompleted  = "completed"
	// sessionEndedAlias is the word earlier versions used for completed.
	// The list filter still takes it, so that old clients keep working;
	// no response carries it.
	sessionEndedAlias = "ended"
)

func sessionStatusString(s recordpb.SessionStatus) string {
	switch s {
	case recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS:
		return sessionInProgress
	case recordpb.SessionStatus_SESSION_STATUS_ENDED:
		return sessionCompleted
	}
	return "unknown"
}

func toSessionJSON(s *recordpb.Session) sessionJSON {
	out := sessionJSON{
		ID:                        s.GetId(),
		RoomID:                    s.GetRoomId(),
		Name:                      s.GetName(),
		DisplayName:               s.GetDisplayName(),
		Status:                    sessionStatusString(s.GetStatus()),
		StartTime:                 s.GetStartTime().AsTime().UTC(),
		ParticipantCount:          s.GetParticipantCount(),
		MaxConcurrentParticipants: s.GetMaxConcurrentParticipants(),
		TotalParticipants:         s.GetTotalParticipants(),
		MaxMembers:                s.GetMaxMembers(),
		Quality:                   s.GetQuality(),
		FPS:                       s.GetFps(),
		JoinFrom:                  utcTime(s.GetJoinFrom()),
		JoinUntil:                 utcTime(s.GetJoinUntil()),
		Layout:                    s.GetLayout(),
		RecordOnStart:             s.GetRecordOnStart(),
		Locked:                    s.GetLocked(),
		RemoveAt:                  utcTime(s.GetRemoveAt()),
		RoomJoinVideoOff:          s.GetRoomJoinVideoOff(),
		UserJoinVideoOff:          s.GetUserJoinVideoOff(),
		PrioritizeHandraise:       s.GetPrioritizeHandraise(),
		SyncAudioVideo:            s.GetSyncAudioVideo(),
		ToneOnEntryAndExit:        s.GetToneOnEntryAndExit(),
		EnableRoomPreviews:        s.GetEnableRoomPreviews(),
		CreatedAt:                 s.GetCreatedAt().AsTime().UTC(),
		UpdatedAt:                 s.GetUpdatedAt().AsTime().UTC(),
		Recordings:                s.GetRecordingIds(),
	}
	if out.Recordings == nil {
		out.Recordings = []string{}
	}
	out.EndTime, out.Duration = actors.Ended(out.StartTime, s.GetEndTime())
	if r := s.GetEndReason(); r != "" {
		r = string(actors.StoredEndReason(r))
		out.EndReason = &r
	}
	if s.RemoveAfterSecondsElapsed != nil {
		v := *s.RemoveAfterSecondsElapsed
		out.RemoveAfterSecondsElapsed = &v
	}
	return out
}

// sessionParticipantJSON is one stay of a participant in a session. One
// who leaves and joins again has two, each with its own participant_id.
type sessionParticipantJSON struct {
	// participant_id to joined_at, as the participant events have them.
	actors.StayHead
	LeftAt      *time.Time `json:"left_at"`
	Duration    *int64     `json:"duration"` // whole seconds; null while present
	LeaveReason *string    `json:"leave_reason"`
}

func toSessionParticipantJSON(m *recordpb.SessionMember) sessionParticipantJSON {
	out := sessionParticipantJSON{StayHead: actors.StayHead{
		ParticipantID: m.GetParticipantId(),
		Identity:      m.GetIdentity(),
		Name:          m.GetName(),
		Role:          m.GetRole(),
		JoinedAt:      m.GetJoinedAt().AsTime().UTC(),
		Hidden:        m.GetHidden(),
		Metadata:      m.GetMetadata(),
	}}
	out.LeftAt, out.Duration = actors.Ended(out.JoinedAt, m.GetLeftAt())
	if r := m.GetLeaveReason(); r != "" {
		out.LeaveReason = &r
	}
	return out
}

// mediaStatsJSON is one participant's media, or a session's totals.
type mediaStatsJSON struct {
	PacketsIn      uint64 `json:"packets_in"`
	BytesIn        uint64 `json:"bytes_in"`
	PacketsOut     uint64 `json:"packets_out"`
	BytesOut       uint64 `json:"bytes_out"`
	PacketsDropped uint64 `json:"packets_dropped"`
	// Loss is packets_dropped / (packets_out + packets_dropped): the share
	// of what was meant for the participant that the server did not send.
	Loss             float64 `json:"loss"`
	Nacks            uint64  `json:"nacks"`
	Retransmits      uint64  `json:"retransmits"`
	NackMisses       uint64  `json:"nack_misses"`
	KeyframeRequests uint64  `json:"keyframe_requests"`
}

func (m *mediaStatsJSON) add(s *recordpb.MediaStats) {
	m.PacketsIn += s.GetPacketsIn()
	m.BytesIn += s.GetBytesIn()
	m.PacketsOut += s.GetPacketsOut()
	m.BytesOut += s.GetBytesOut()
	m.PacketsDropped += s.GetPacketsDropped()
	m.Nacks += s.GetNacks()
	m.Retransmits += s.GetRetransmits()
	m.NackMisses += s.GetNackMisses()
	m.KeyframeRequests += s.GetKeyframeRequests()
	m.Loss = 0
	if meant := m.PacketsOut + m.PacketsDropped; meant > 0 {
		m.Loss = float64(m.PacketsDropped) / float64(meant)
	}
}

type participantStatsJSON struct {
	ParticipantID string `json:"participant_id"`
	Identity      string `json:"identity"`
	// Live: still in the room; its figures still grow.
	Live bool `json:"live"`
	mediaStatsJSON
	// Receiving is what a live participant receives now; null for the
	// others.
	Receiving *receivingJSON `json:"receiving"`
}

type sessionStatsJSON struct {
	SessionID    string                 `json:"session_id"`
	Participants []participantStatsJSON `json:"participants"`
	Totals       mediaStatsJSON         `json:"totals"`
}

func toSessionStatsJSON(id actors.SessionID, stats []actors.ParticipantStats) sessionStatsJSON {
	out := sessionStatsJSON{SessionID: string(id), Participants: make([]participantStatsJSON, len(stats))}
	for i, p := range stats {
		ps := participantStatsJSON{ParticipantID: string(p.ParticipantID), Identity: p.Identity, Live: p.Live, Receiving: toReceivingJSON(p.Receiving)}
		ps.add(p.Media)
		out.Participants[i] = ps
		out.Totals.add(p.Media)
	}
	return out
}

func (s *Server) listSessions(c *gin.Context) error {
	query := c.Request.URL.Query()
	var roomID actors.RoomID
	if query.Has("room_id") {
		roomID = actors.RoomID(query.Get("room_id"))
		if actors.ValidateRoomID(roomID) != nil {
			return fieldError("room_id", "must be a room id: 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
		}
	}
	out, err := s.sessionPage(c, roomID)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

// listRoomSessions lists a room's sessions, also after the room was
// deleted: session records outlive their room. A room that does not exist
// and never had a session is not found.
func (s *Server) listRoomSessions(c *gin.Context) error {
	return s.listOfRoom(c, func(id actors.RoomID) (any, int, error) {
		out, err := s.sessionPage(c, id)
		return out, out.Total, err
	})
}

// listOfRoom answers a listing of one room's records, which outlive the
// room: page reads it, with its total. A room that does not exist and has
// none is not found.
func (s *Server) listOfRoom(c *gin.Context, page func(actors.RoomID) (out any, total int, err error)) error {
	id := actors.RoomID(c.Param("id"))
	if actors.ValidateRoomID(id) != nil {
		return actors.ErrRoomNotFound
	}
	out, total, err := page(id)
	if err != nil {
		return err
	}
	if total == 0 {
		if err := s.roomKnown(c.Request.Context(), id); err != nil {
			return err
		}
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

// roomKnown returns nil if the room exists or has a session on record
// (under any status), else ErrRoomNotFound.
func (s *Server) roomKnown(ctx context.Context, id actors.RoomID) error {
	_, total, err := s.cfg.Rooms.Sessions(ctx, actors.SessionQuery{RoomID: id, Limit: 1})
	if err != nil || total > 0 {
		return err
	}
	_, err = s.cfg.Rooms.Get(ctx, id)
	return err
}

// sessionPage reads limit, offset and status and lists roomID's sessions
// (every room's when roomID is empty), newest first.
func (s *Server) sessionPage(c *gin.Context, roomID actors.RoomID) (sessionListJSON, error) {
	q := actors.SessionQuery{RoomID: roomID}
	query := c.Request.URL.Query()
	var err error
	if q.Limit, q.Offset, err = pageParams(query); err != nil {
		return sessionListJSON{}, err
	}
	if query.Has("status") {
		switch query.Get("status") {
		case sessionInProgress:
			q.Status = recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS
		case sessionCompleted, sessionEndedAlias:
			q.Status = recordpb.SessionStatus_SESSION_STATUS_ENDED
		default:
			return sessionListJSON{}, fieldError("status", "must be in-progress or completed")
		}
	}
	list, total, err := s.cfg.Rooms.Sessions(c.Request.Context(), q)
	if err != nil {
		return sessionListJSON{}, err
	}
	out := sessionListJSON{Sessions: make([]sessionJSON, len(list)), Total: total, Limit: q.Limit, Offset: q.Offset}
	for i, ses := range list {
		out.Sessions[i] = toSessionJSON(ses)
	}
	return out, nil
}

func (s *Server) getSession(c *gin.Context) error {
	ses, err := s.cfg.Rooms.Session(c.Request.Context(), actors.SessionID(c.Param("id")))
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, toSessionJSON(ses))
	return nil
}

// sessionParticipantListJSON is a session's history in join order, in an
// object like the live participants of a room.
type sessionParticipantListJSON struct {
	Participants []sessionParticipantJSON `json:"participants"`
}

func (s *Server) listSessionParticipants(c *gin.Context) error {
	members, err := s.cfg.Rooms.SessionParticipants(c.Request.Context(), actors.SessionID(c.Param("id")))
	if err != nil {
		return err
	}
	out := sessionParticipantListJSON{Participants: make([]sessionParticipantJSON, len(members))}
	for i, m := range members {
		out.Participants[i] = toSessionParticipantJSON(m)
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

func (s *Server) sessionStats(c *gin.Context) error {
	id := actors.SessionID(c.Param("id"))
	stats, err := s.cfg.Rooms.SessionStats(c.Request.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, toSessionStatsJSON(id, stats))
	return nil
}

// endSession ends a session in progress: its members are disconnected and
// the room stays open, so the next one to enter starts a new session.
func (s *Server) endSession(c *gin.Context) error {
	// No fields are defined; an empty body or {} is accepted.
	o, err := optionalJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	ses, err := s.cfg.Rooms.EndSession(c.Request.Context(), actors.SessionID(c.Param("id")))
	if errors.Is(err, actors.ErrRoomNotFound) {
		// The room went (deleted) between the session read and the end:
		// deleting it ended the session.
		err = actors.ErrSessionEnded
	}
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, toSessionJSON(ses))
	return nil
}
