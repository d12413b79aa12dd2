package actors

import (
	"time"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// RecordingJSON describes a recording: the API's recording object and the
// data of the recording events, so that a webhook receiver and an API
// client read the same fields (see eventjson.go).
type RecordingJSON struct {
	ID           string     `json:"id"`
	RoomID       string     `json:"room_id"`
	SessionID    string     `json:"session_id"`
	Status       string     `json:"status"`
	Layout       string     `json:"layout"`
	AudioOnly    bool       `json:"audio_only"`
	Participants []string   `json:"participants"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	StartedAt    *time.Time `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	// Duration is in whole seconds, from started_at to ended_at; null
	// until it has ended.
	Duration *int64 `json:"duration"`
	// Size is the bytes of all its files.
	Size      uint64  `json:"size"`
	EndReason *string `json:"end_reason"`
	Error     *string `json:"error"`
	// Part is the part being written (the last one once it has ended): 1,
	// and one more each time the recording went on on another node after
	// a failover.
	Part  uint32              `json:"part"`
	Files []RecordingFileJSON `json:"files"`
}

// RecordingFileJSON is one file of a recording.
type RecordingFileJSON struct {
	Name          string   `json:"name"`
	ParticipantID string   `json:"participant_id"`
	Identity      string   `json:"identity"`
	TrackIDs      []string `json:"track_ids"`
	Codecs        []string `json:"codecs"`
	// Container is "webm" or "mkv".
	Container string `json:"container"`
	Size      uint64 `json:"size"`
	// Duration of its media in seconds, to the millisecond.
	Duration float64 `json:"duration"`
	// Part is the part of the recording the file is in; NodeID the node
	// that holds it ("" on a single node).
	Part   uint32 `json:"part"`
	NodeID string `json:"node_id"`
	// Writing: the file is still being written; its size and duration
	// are those so far.
	Writing bool `json:"writing"`
	// Available says whether the node holding the file can be reached for
	// its download (false while that node is down): in an API answer, as
	// the node answering sees the cluster now; in an event, as the node
	// that wrote it did.
	Available bool `json:"available"`
}

// NewRecordingJSON describes r.
func NewRecordingJSON(r *recordpb.Recording) RecordingJSON {
	j := RecordingJSON{
		ID: r.Id, RoomID: r.RoomId, SessionID: r.SessionId, Status: RecordingStatusName(r.Status),
		Layout: r.Layout, AudioOnly: r.AudioOnly, Participants: r.Participants,
		CreatedAt: r.CreatedAt.AsTime(), UpdatedAt: r.UpdatedAt.AsTime(),
		Part: recordingPart(r), Files: make([]RecordingFileJSON, len(r.Files)),
	}
	if j.Participants == nil {
		j.Participants = []string{}
	}
	if r.StartedAt != nil {
		t := r.StartedAt.AsTime()
		j.StartedAt = &t
		j.EndedAt, j.Duration = Ended(t, r.EndedAt)
	} else if r.EndedAt != nil {
		t := r.EndedAt.AsTime()
		j.EndedAt = &t
	}
	if r.EndReason != "" {
		j.EndReason = &r.EndReason
	}
	if r.Error != "" {
		j.Error = &r.Error
	}
	for i, f := range r.Files {
		j.Size += f.Size
		j.Files[i] = newRecordingFileJSON(f)
		j.Files[i].NodeID = fileNode(r, f)
	}
	return j
}

func newRecordingFileJSON(f *recordpb.RecordingFile) RecordingFileJSON {
	j := RecordingFileJSON{Name: f.Name, ParticipantID: f.ParticipantId, Identity: f.Identity, TrackIDs: f.TrackIds,
		Codecs: f.Codecs, Container: f.Container, Size: f.Size, Duration: float64(f.DurationMs) / 1000,
		Part: filePart(f), NodeID: f.NodeId, Writing: f.Writing, Available: true}
	if j.TrackIDs == nil {
		j.TrackIDs = []string{}
	}
	if j.Codecs == nil {
		j.Codecs = []string{}
	}
	return j
}

// recordingFileEventData is the data of a participant-recording-* or
// participant-track-recording-* event: the file and its recording.
type recordingFileEventData struct {
	RecordingID string `json:"recording_id"`
	RecordingFileJSON
	Reason string `json:"reason,omitempty"`
}
