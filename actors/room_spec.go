package actors

// This file owns what a room may be: its id, the defaults of a new room,
// applying a patch, and the validation of a room record.

import (
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Defaults of a new room's config, where the create request is silent.
const (
	DefaultMaxParticipants = 100
	DefaultEmptyTimeout    = 300 // seconds
	DefaultQuality         = "720p"
	DefaultFPS             = 30
	DefaultLayout          = "grid"
	DefaultChatEnabled     = true
	// DefaultAutoCloseDuration is the auto_close duration (minutes) of a
	// request that gives a type without one: VideoSDK's default, 8 hours.
	DefaultAutoCloseDuration = 480
)

// Limits of the room fields.
const (
	maxNameLen         = 200
	maxParticipants    = 10000
	maxSessionLength   = 7 * 24 * 60 // minutes
	maxEmptyTimeout    = 24 * 60 * 60
	maxRemoveAfter     = 7 * 24 * 60 * 60
	maxAutoCloseLength = 7 * 24 * 60 // minutes
	maxEndpointLen     = 2048
	maxSecretLen       = 256
	maxWebhookEvents   = 32
)

var (
	qualities = []string{"180p", "360p", "480p", "720p", "1080p"}
	// layouts are the web page's own and SignalWire's names, which a
	// client that knows them may honour; the page shows SignalWire's as a
	// grid, or speaker for highlight-1-responsive.
	layouts = []string{"grid", "speaker", "sidebar",
		"grid-responsive", "grid-responsive-mobile", "highlight-1-responsive",
		"1x1", "2x1", "2x2", "5up", "3x3", "4x4", "5x5", "6x6", "8x8", "10x10"}
	autoCloseKind = []string{"session-ends", "session-end-and-deactivate"}
	privacies     = []string{PrivacyPrivate, PrivacyPublic}
	// defaultRoles are the roles a room may hand those who join by its
	// link: never moderator, which anyone with the link would then be.
	defaultRoles = []string{string(RolePublisher), string(RoleSubscriber)}
)

// A room's privacy: whether its link alone lets people join.
const (
	// PrivacyPrivate: the link needs a join token (the default).
	PrivacyPrivate = "private"
	// PrivacyPublic: anyone with the link joins with the room's default
	// role, on a token the server mints for them.
	PrivacyPublic = "public"
)

// RoomPrivacy is r's privacy; records from before the field are private.
func RoomPrivacy(r *recordpb.Room) string {
	if r.GetPrivacy() == "" {
		return PrivacyPrivate
	}
	return r.GetPrivacy()
}

// RoomDefaultRole is the role of those who join r by its link; records
// from before the field give publisher.
func RoomDefaultRole(r *recordpb.Room) Role {
	if r.GetDefaultRole() == "" {
		return RolePublisher
	}
	return Role(r.GetDefaultRole())
}

// The fields a patch may clear (set to null), by their API names.
const (
	ClearJoinFrom    = "config.join_from"
	ClearJoinUntil   = "config.join_until"
	ClearRemoveAfter = "config.remove_after_seconds_elapsed"
	ClearRemoveAt    = "config.remove_at"
	ClearWebhook     = "webhook"
	ClearAutoClose   = "auto_close"
	ClearAutoStart   = "auto_start"
)

// ValidateRoomID reports whether id may name a room: [A-Za-z0-9_-]{1,64}.
// It runs on every request that names a room, so it is a loop, not a regexp.
func ValidateRoomID(id RoomID) error {
	if len(id) < 1 || len(id) > 64 {
		return invalid("id", "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return invalid("id", "must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
		}
	}
	return nil
}

// ApplyDefaults fills the config fields that a new room needs and that are
// unset. It is what a create starts from.
func ApplyDefaults(r *recordpb.Room) {
	if r.Config == nil {
		r.Config = &recordpb.RoomConfig{}
	}
	c := r.Config
	if c.MaxParticipants == 0 {
		c.MaxParticipants = DefaultMaxParticipants
	}
	if c.Quality == "" {
		c.Quality = DefaultQuality
	}
	if c.Fps == 0 {
		c.Fps = DefaultFPS
	}
	if c.Layout == "" {
		c.Layout = DefaultLayout
	}
}

// newRoomFromSpec builds the record of a new room: defaults, then the spec.
func newRoomFromSpec(id RoomID, spec *actorpb.RoomPatch) (*recordpb.Room, error) {
	r := &recordpb.Room{
		Id:          string(id),
		Status:      recordpb.RoomStatus_ROOM_STATUS_ACTIVE,
		Privacy:     PrivacyPrivate,
		DefaultRole: string(RolePublisher),
		Config: &recordpb.RoomConfig{
			EmptyTimeout: DefaultEmptyTimeout,
			ChatEnabled:  DefaultChatEnabled,
		},
	}
	ApplyDefaults(r)
	if spec == nil || spec.Name == nil {
		return nil, invalid("name", "is required")
	}
	if err := applyPatch(r, spec); err != nil {
		return nil, err
	}
	if spec.DisplayName == nil {
		r.DisplayName = r.Name
	}
	return r, nil
}

// applyPatch changes r by p: set fields replace, config merges field by field,
// clear resets nullable fields. It validates the patch's shape (unknown clear
// names) but not the resulting room: call ValidateRoom on the result.
func applyPatch(r *recordpb.Room, p *actorpb.RoomPatch) error {
	for _, f := range p.Clear {
		switch f {
		case ClearJoinFrom:
			r.Config.JoinFrom = nil
		case ClearJoinUntil:
			r.Config.JoinUntil = nil
		case ClearRemoveAfter:
			r.Config.RemoveAfterSecondsElapsed = nil
		case ClearRemoveAt:
			r.Config.RemoveAt = nil
		case ClearWebhook:
			r.Webhook = nil
		case ClearAutoClose:
			r.AutoClose = nil
		case ClearAutoStart:
			r.AutoStart = nil
		default:
			return invalid(f, "cannot be null")
		}
	}
	if p.Name != nil {
		r.Name = *p.Name
	}
	if p.DisplayName != nil {
		r.DisplayName = *p.DisplayName
	}
	// Empty means the default only in old records: a patch names one.
	if p.Privacy != nil && *p.Privacy == "" {
		return invalid("privacy", "must be one of %s", strings.Join(privacies, ", "))
	}
	if p.DefaultRole != nil && *p.DefaultRole == "" {
		return invalid("default_role", "must be one of %s", strings.Join(defaultRoles, ", "))
	}
	setIf(&r.Privacy, p.Privacy)
	setIf(&r.DefaultRole, p.DefaultRole)
	if p.Webhook != nil {
		r.Webhook = proto.Clone(p.Webhook).(*recordpb.Webhook)
	}
	if p.AutoClose != nil {
		r.AutoClose = proto.Clone(p.AutoClose).(*recordpb.AutoClose)
	}
	if p.AutoStart != nil {
		r.AutoStart = proto.Clone(p.AutoStart).(*recordpb.AutoStart)
	}
	if cp := p.Config; cp != nil {
		c := r.Config
		setIf(&c.MaxParticipants, cp.MaxParticipants)
		setIf(&c.RecordingEnabled, cp.RecordingEnabled)
		setIf(&c.ChatEnabled, cp.ChatEnabled)
		setIf(&c.RecordOnStart, cp.RecordOnStart)
		setIf(&c.SessionLength, cp.SessionLength)
		setIf(&c.EmptyTimeout, cp.EmptyTimeout)
		setIf(&c.Locked, cp.Locked)
		setIf(&c.Quality, cp.Quality)
		setIf(&c.Fps, cp.Fps)
		setIf(&c.Layout, cp.Layout)
		setIf(&c.ToneOnEntryAndExit, cp.ToneOnEntryAndExit)
		setIf(&c.RoomJoinVideoOff, cp.RoomJoinVideoOff)
		setIf(&c.UserJoinVideoOff, cp.UserJoinVideoOff)
		setIf(&c.PrioritizeHandraise, cp.PrioritizeHandraise)
		setIf(&c.SyncAudioVideo, cp.SyncAudioVideo)
		setIf(&c.EnableRoomPreviews, cp.EnableRoomPreviews)
		if cp.RemoveAt != nil {
			c.RemoveAt = proto.Clone(cp.RemoveAt).(*timestamppb.Timestamp)
		}
		if cp.JoinFrom != nil {
			c.JoinFrom = proto.Clone(cp.JoinFrom).(*timestamppb.Timestamp)
		}
		if cp.JoinUntil != nil {
			c.JoinUntil = proto.Clone(cp.JoinUntil).(*timestamppb.Timestamp)
		}
		if cp.RemoveAfterSecondsElapsed != nil {
			v := *cp.RemoveAfterSecondsElapsed
			c.RemoveAfterSecondsElapsed = &v
		}
	}
	return nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// ValidateRoom checks every client-settable field of a room record and
// returns a *ValidationError naming the first bad one (a
// *NotProvidedError for an auto_start that needs decoding).
func ValidateRoom(r *recordpb.Room) error {
	if err := ValidateRoomID(RoomID(r.Id)); err != nil {
		return err
	}
	if err := validateName("name", r.Name, true); err != nil {
		return err
	}
	if err := validateName("display_name", r.DisplayName, false); err != nil {
		return err
	}
	// Empty in records from before the fields: private, publisher.
	if r.Privacy != "" && !oneOf(r.Privacy, privacies) {
		return invalid("privacy", "must be one of %s", strings.Join(privacies, ", "))
	}
	if r.DefaultRole != "" && !oneOf(r.DefaultRole, defaultRoles) {
		return invalid("default_role", "must be one of %s", strings.Join(defaultRoles, ", "))
	}
	c := r.Config
	if c == nil {
		return invalid("config", "is required")
	}
	switch {
	case c.MaxParticipants < 1 || c.MaxParticipants > maxParticipants:
		return invalid("config.max_participants", "must be between 1 and %d", maxParticipants)
	case c.SessionLength > maxSessionLength:
		return invalid("config.session_length", "must be between 0 and %d minutes", maxSessionLength)
	case c.EmptyTimeout > maxEmptyTimeout:
		return invalid("config.empty_timeout", "must be between 0 and %d seconds", maxEmptyTimeout)
	case c.RemoveAfterSecondsElapsed != nil && (*c.RemoveAfterSecondsElapsed < 1 || *c.RemoveAfterSecondsElapsed > maxRemoveAfter):
		return invalid("config.remove_after_seconds_elapsed", "must be between 1 and %d seconds, or null", maxRemoveAfter)
	case !oneOf(c.Quality, qualities):
		return invalid("config.quality", "must be one of %s", strings.Join(qualities, ", "))
	case c.Fps < 1 || c.Fps > 60:
		return invalid("config.fps", "must be between 1 and 60")
	case !oneOf(c.Layout, layouts):
		return invalid("config.layout", "must be one of %s", strings.Join(layouts, ", "))
	case c.RecordOnStart && !c.RecordingEnabled:
		return invalid("config.record_on_start", "needs recording_enabled")
	}
	if err := validateTime("config.join_from", c.JoinFrom); err != nil {
		return err
	}
	if err := validateTime("config.join_until", c.JoinUntil); err != nil {
		return err
	}
	if err := validateTime("config.remove_at", c.RemoveAt); err != nil {
		return err
	}
	if c.JoinFrom != nil && c.JoinUntil != nil && !c.JoinFrom.AsTime().Before(c.JoinUntil.AsTime()) {
		return invalid("config.join_until", "must be after join_from")
	}
	if w := r.Webhook; w != nil {
		if err := validateWebhook(w); err != nil {
			return err
		}
	}
	if a := r.AutoClose; a != nil {
		if !oneOf(a.Type, autoCloseKind) {
			return invalid("auto_close.type", "must be one of %s", strings.Join(autoCloseKind, ", "))
		}
		if a.Duration < 1 || a.Duration > maxAutoCloseLength {
			return invalid("auto_close.duration", "must be between 1 and %d minutes", maxAutoCloseLength)
		}
	}
	return validateAutoStart(r)
}

func validateName(field, s string, required bool) error {
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if required && strings.TrimSpace(s) == "" {
		return invalid(field, "is required")
	}
	if n > maxNameLen {
		return invalid(field, "must be at most %d characters", maxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
	}
	return nil
}

// Times outside years 1..9999 cannot be written as RFC 3339.
func validateTime(field string, ts *timestamppb.Timestamp) error {
	if ts == nil {
		return nil
	}
	if err := ts.CheckValid(); err != nil {
		return invalid(field, "is not a valid time")
	}
	return nil
}

func validateWebhook(w *recordpb.Webhook) error {
	if len(w.Endpoint) > maxEndpointLen {
		return invalid("webhook.endpoint", "must be at most %d characters", maxEndpointLen)
	}
	u, err := url.Parse(w.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("webhook.endpoint", "must be an absolute http or https URL")
	}
	if u.User != nil {
		return invalid("webhook.endpoint", "must not carry credentials; use secret")
	}
	if len(w.Events) == 0 {
		return invalid("webhook.events", "must name at least one event (or \"*\")")
	}
	if len(w.Events) > maxWebhookEvents {
		return invalid("webhook.events", "must name at most %d events", maxWebhookEvents)
	}
	for _, e := range w.Events {
		if !webhook.ValidPattern(e) {
			return invalid("webhook.events", "unknown event %q", e)
		}
	}
	if len(w.Secret) > maxSecretLen {
		return invalid("webhook.secret", "must be at most %d characters", maxSecretLen)
	}
	return nil
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
