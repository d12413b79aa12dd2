package httpapi

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// roomJSON is the room object of the API (openapi.json). Every field is always present;
// pointers render null where the room has no value.
type roomJSON struct {
	// id, name, display_name and status, as the room events have them.
	actors.RoomHead
	ParticipantCount int            `json:"participant_count"`
	ActiveSessionID  *string        `json:"active_session_id"`
	Config           configJSON     `json:"config"`
	Webhook          *webhookJSON   `json:"webhook"`
	AutoClose        *autoCloseJSON `json:"auto_close"`
	AutoStart        *autoStartJSON `json:"auto_start"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	EndedAt          *time.Time     `json:"ended_at"`
	// Failure is the room's last failure stop while the server remembers
	// it; status is "failed" during its cool-down.
	Failure *roomFailureJSON `json:"failure"`
	// NodeID is the cluster node that owns the room: null on a single
	// node, and for a room no node owns (its actor runs nowhere now).
	NodeID *string `json:"node_id"`
	// PreviewURL is SignalWire's, always null: a preview needs decoding
	// video, which an SFU does not do.
	PreviewURL *string `json:"preview_url"`
	// URL is the room's page, which joins it; Privacy says whether the
	// link alone lets people in (public), with DefaultRole.
	URL         string `json:"url"`
	Privacy     string `json:"privacy"`
	DefaultRole string `json:"default_role"`
}

type roomFailureJSON struct {
	FailedAt time.Time `json:"failed_at"`
	Reason   string    `json:"reason"`
	Count    int       `json:"count"`
	RetryAt  time.Time `json:"retry_at"`
}

type configJSON struct {
	MaxParticipants           uint32     `json:"max_participants"`
	RecordingEnabled          bool       `json:"recording_enabled"`
	ChatEnabled               bool       `json:"chat_enabled"`
	RecordOnStart             bool       `json:"record_on_start"`
	SessionLength             uint32     `json:"session_length"`
	EmptyTimeout              uint32     `json:"empty_timeout"`
	JoinFrom                  *time.Time `json:"join_from"`
	JoinUntil                 *time.Time `json:"join_until"`
	RemoveAfterSecondsElapsed *uint32    `json:"remove_after_seconds_elapsed"`
	Locked                    bool       `json:"locked"`
	Quality                   string     `json:"quality"`
	FPS                       uint32     `json:"fps"`
	Layout                    string     `json:"layout"`
	ToneOnEntryAndExit        bool       `json:"tone_on_entry_and_exit"`
	// SignalWire's room fields (see openapi.json).
	RemoveAt            *time.Time `json:"remove_at"`
	RoomJoinVideoOff    bool       `json:"room_join_video_off"`
	UserJoinVideoOff    bool       `json:"user_join_video_off"`
	PrioritizeHandraise bool       `json:"prioritize_handraise"`
	SyncAudioVideo      bool       `json:"sync_audio_video"`
	EnableRoomPreviews  bool       `json:"enable_room_previews"`
}

// webhookJSON leaves out the secret on purpose: it is write-only.
type webhookJSON struct {
	Endpoint string   `json:"endpoint"`
	Events   []string `json:"events"`
}

type autoCloseJSON struct {
	Type     string `json:"type"`
	Duration uint32 `json:"duration"`
}

type roomListJSON struct {
	Rooms  []roomJSON `json:"rooms"`
	Total  int        `json:"total"`
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
}

// utcTime renders an optional timestamp: nil when unset.
func utcTime(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}

func toRoomJSON(info *actors.RoomInfo) roomJSON {
	r := info.Room
	out := roomJSON{
		RoomHead:         actors.NewRoomHead(r),
		ParticipantCount: info.ParticipantCount,
		CreatedAt:        r.GetCreatedAt().AsTime().UTC(),
		UpdatedAt:        r.GetUpdatedAt().AsTime().UTC(),
		EndedAt:          utcTime(r.GetEndedAt()),
	}
	if s := r.GetActiveSessionId(); s != "" {
		out.ActiveSessionID = &s
	}
	out.Privacy = actors.RoomPrivacy(r)
	out.DefaultRole = string(actors.RoomDefaultRole(r))
	if info.Failed {
		out.Status = "failed"
	}
	if f := info.Failure; f != nil {
		out.Failure = &roomFailureJSON{FailedAt: f.At.UTC(), Reason: f.Reason, Count: f.Count, RetryAt: f.Until.UTC()}
	}
	c := r.GetConfig()
	out.Config = configJSON{
		MaxParticipants:     c.GetMaxParticipants(),
		RecordingEnabled:    c.GetRecordingEnabled(),
		ChatEnabled:         c.GetChatEnabled(),
		RecordOnStart:       c.GetRecordOnStart(),
		SessionLength:       c.GetSessionLength(),
		EmptyTimeout:        c.GetEmptyTimeout(),
		JoinFrom:            utcTime(c.GetJoinFrom()),
		JoinUntil:           utcTime(c.GetJoinUntil()),
		Locked:              c.GetLocked(),
		Quality:             c.GetQuality(),
		FPS:                 c.GetFps(),
		Layout:              c.GetLayout(),
		ToneOnEntryAndExit:  c.GetToneOnEntryAndExit(),
		RemoveAt:            utcTime(c.GetRemoveAt()),
		RoomJoinVideoOff:    c.GetRoomJoinVideoOff(),
		UserJoinVideoOff:    c.GetUserJoinVideoOff(),
		PrioritizeHandraise: c.GetPrioritizeHandraise(),
		SyncAudioVideo:      c.GetSyncAudioVideo(),
		EnableRoomPreviews:  c.GetEnableRoomPreviews(),
	}
	if c != nil && c.RemoveAfterSecondsElapsed != nil {
		v := *c.RemoveAfterSecondsElapsed
		out.Config.RemoveAfterSecondsElapsed = &v
	}
	if w := r.GetWebhook(); w != nil {
		events := w.GetEvents()
		if events == nil {
			events = []string{}
		}
		out.Webhook = &webhookJSON{Endpoint: w.GetEndpoint(), Events: events}
	}
	if a := r.GetAutoClose(); a != nil {
		out.AutoClose = &autoCloseJSON{Type: a.GetType(), Duration: a.GetDuration()}
	}
	out.AutoStart = toAutoStartJSON(r.GetAutoStart())
	return out
}

// createRequest is a decoded POST /rooms body: the optional custom id and
// the room's fields as a patch over the defaults.
type createRequest struct {
	id   actors.RoomID
	spec *actorpb.RoomPatch
}

func decodeCreateRoom(o *jsonObject) (createRequest, error) {
	var req createRequest
	id, err := nonNull[string](o, "id", whatString)
	if err != nil {
		return req, err
	}
	if id != nil {
		req.id = actors.RoomID(*id)
		if err := actors.ValidateRoomID(req.id); err != nil {
			return req, err
		}
	}
	if req.spec, err = decodeRoomPatch(o); err != nil {
		return req, err
	}
	return req, nil
}

// decodeRoomPatch reads the writable fields of a room. A null on a
// nullable field lands in clear; on any other field it is an error.
func decodeRoomPatch(o *jsonObject) (*actorpb.RoomPatch, error) {
	p := &actorpb.RoomPatch{}
	var err error
	if p.Name, err = nonNull[string](o, "name", whatString); err != nil {
		return nil, err
	}
	if p.DisplayName, err = nonNull[string](o, "display_name", whatString); err != nil {
		return nil, err
	}
	if p.Privacy, err = nonNull[string](o, "privacy", whatString); err != nil {
		return nil, err
	}
	if p.DefaultRole, err = nonNull[string](o, "default_role", whatString); err != nil {
		return nil, err
	}
	cfg, present, null, err := o.object("config")
	switch {
	case err != nil:
		return nil, err
	case null:
		return nil, fieldError("config", "must not be null")
	case present:
		if p.Config, err = decodeConfigPatch(cfg, p); err != nil {
			return nil, err
		}
	}
	wh, present, null, err := o.object("webhook")
	switch {
	case err != nil:
		return nil, err
	case null:
		p.Clear = append(p.Clear, actors.ClearWebhook)
	case present:
		if p.Webhook, err = decodeWebhook(wh); err != nil {
			return nil, err
		}
	}
	ac, present, null, err := o.object("auto_close")
	switch {
	case err != nil:
		return nil, err
	case null:
		p.Clear = append(p.Clear, actors.ClearAutoClose)
	case present:
		if p.AutoClose, err = decodeAutoClose(ac); err != nil {
			return nil, err
		}
	}
	as, present, null, err := o.object("auto_start")
	switch {
	case err != nil:
		return nil, err
	case null:
		p.Clear = append(p.Clear, actors.ClearAutoStart)
	case present:
		if p.AutoStart, err = decodeAutoStart(as); err != nil {
			return nil, err
		}
		if p.AutoStart.Recording == nil {
			// Nothing starts by itself: the same as null.
			p.AutoStart = nil
			p.Clear = append(p.Clear, actors.ClearAutoStart)
		}
	}
	return p, o.finish()
}

func decodeConfigPatch(o *jsonObject, p *actorpb.RoomPatch) (*actorpb.ConfigPatch, error) {
	c := &actorpb.ConfigPatch{}
	var err error
	uints := []struct {
		name string
		dst  **uint32
	}{
		{"max_participants", &c.MaxParticipants},
		{"session_length", &c.SessionLength},
		{"empty_timeout", &c.EmptyTimeout},
		{"fps", &c.Fps},
	}
	for _, f := range uints {
		if *f.dst, err = nonNull[uint32](o, f.name, whatUint32); err != nil {
			return nil, err
		}
	}
	bools := []struct {
		name string
		dst  **bool
	}{
		{"recording_enabled", &c.RecordingEnabled},
		{"chat_enabled", &c.ChatEnabled},
		{"record_on_start", &c.RecordOnStart},
		{"locked", &c.Locked},
		{"tone_on_entry_and_exit", &c.ToneOnEntryAndExit},
		{"room_join_video_off", &c.RoomJoinVideoOff},
		{"user_join_video_off", &c.UserJoinVideoOff},
		{"prioritize_handraise", &c.PrioritizeHandraise},
		{"sync_audio_video", &c.SyncAudioVideo},
		{"enable_room_previews", &c.EnableRoomPreviews},
	}
	for _, f := range bools {
		if *f.dst, err = nonNull[bool](o, f.name, whatBool); err != nil {
			return nil, err
		}
	}
	if c.Quality, err = nonNull[string](o, "quality", whatString); err != nil {
		return nil, err
	}
	if c.Layout, err = nonNull[string](o, "layout", whatString); err != nil {
		return nil, err
	}
	times := []struct {
		name, clear string
		dst         **timestamppb.Timestamp
	}{
		{"join_from", actors.ClearJoinFrom, &c.JoinFrom},
		{"join_until", actors.ClearJoinUntil, &c.JoinUntil},
		{"remove_at", actors.ClearRemoveAt, &c.RemoveAt},
	}
	for _, f := range times {
		t, present, null, err := timeValue(o, f.name)
		switch {
		case err != nil:
			return nil, err
		case null:
			p.Clear = append(p.Clear, f.clear)
		case present:
			*f.dst = timestamppb.New(t)
		}
	}
	rm, present, null, err := value[uint32](o, "remove_after_seconds_elapsed", whatUint32)
	switch {
	case err != nil:
		return nil, err
	case null:
		p.Clear = append(p.Clear, actors.ClearRemoveAfter)
	case present:
		c.RemoveAfterSecondsElapsed = proto.Uint32(rm)
	}
	return c, o.finish()
}

func decodeWebhook(o *jsonObject) (*recordpb.Webhook, error) {
	w := &recordpb.Webhook{}
	endpoint, err := nonNull[string](o, "endpoint", whatString)
	if err != nil {
		return nil, err
	}
	events, err := nonNull[[]string](o, "events", whatStrings)
	if err != nil {
		return nil, err
	}
	secret, err := nonNull[string](o, "secret", whatString)
	if err != nil {
		return nil, err
	}
	if endpoint != nil {
		w.Endpoint = *endpoint
	}
	if events != nil {
		w.Events = *events
	}
	if secret != nil {
		w.Secret = *secret
	}
	return w, o.finish()
}

func decodeAutoClose(o *jsonObject) (*recordpb.AutoClose, error) {
	a := &recordpb.AutoClose{}
	typ, err := nonNull[string](o, "type", whatString)
	if err != nil {
		return nil, err
	}
	d, err := nonNull[uint32](o, "duration", whatUint32)
	if err != nil {
		return nil, err
	}
	if typ != nil {
		a.Type = *typ
	}
	// The record cannot tell an absent duration from 0, so the default is
	// applied here, where absence is known; an explicit 0 stays refused.
	a.Duration = actors.DefaultAutoCloseDuration
	if d != nil {
		a.Duration = *d
	}
	return a, o.finish()
}
