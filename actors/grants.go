package actors

// This file owns what a participant may do in its room: its grants (the
// roles are presets of them), the sources of the tracks it publishes, its
// metadata, and the checks of all three. The room and the participant
// actor enforce them; room_grants.go changes them on a live participant.

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// TrackSource is what a published track carries. A signaling client names
// the source of each track it sends in its offer (by mid); a track it does
// not name, and every WHIP track, is its kind's default: microphone for
// audio, camera for video.
type TrackSource string

const (
	SourceCamera           TrackSource = "camera"
	SourceMicrophone       TrackSource = "microphone"
	SourceScreenShare      TrackSource = "screen_share"
	SourceScreenShareAudio TrackSource = "screen_share_audio"
)

// trackSources are the sources, in the order the API lists them.
var trackSources = []TrackSource{SourceCamera, SourceMicrophone, SourceScreenShare, SourceScreenShareAudio}

// TrackSources lists every track source.
func TrackSources() []TrackSource { return slices.Clone(trackSources) }

// ParseTrackSource returns the source named s, or false.
func ParseTrackSource(s string) (TrackSource, bool) {
	src := TrackSource(s)
	return src, slices.Contains(trackSources, src)
}

// Kind is the media kind of the source's tracks: "audio" or "video".
func (s TrackSource) Kind() string {
	if s == SourceMicrophone || s == SourceScreenShareAudio {
		return "audio"
	}
	return "video"
}

// defaultSource is the source of a track of kind whose client named none.
func defaultSource(kind string) TrackSource {
	if kind == "audio" {
		return SourceMicrophone
	}
	return SourceCamera
}

func sourceNames() string {
	names := make([]string, len(trackSources))
	for i, s := range trackSources {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Grants are what a participant may do in its room. A join token carries
// them (over its role's preset, RoleGrants); the API changes them on a
// live participant (Rooms.UpdateParticipant).
type Grants struct {
	// Publish allows publishing media tracks, of PublishSources only when
	// that is set.
	Publish bool
	// PublishSources limits Publish to these sources; nil: every source.
	PublishSources []TrackSource
	// Subscribe allows receiving the room's media; without it the
	// participant is sent no track.
	Subscribe bool
	// PublishData allows sending data and chat messages (receiving them
	// needs no grant).
	PublishData bool
	// Hidden participants (recorders, observers) are not shown to the
	// others: not in their participant lists and events, not in the
	// room's participant_count, not counted against max_participants.
	// They publish nothing, neither media nor data: either would show
	// them.
	Hidden bool
}

// RoleGrants is the preset of a role: a publisher and a moderator may do
// everything; a subscriber receives, and may send data and chat. A
// moderator's further rights (joining a locked room, joining with the
// camera on in a user_join_video_off room) are its role's, not grants.
func RoleGrants(r Role) Grants {
	g := Grants{Subscribe: true, PublishData: true}
	if r.canPublish() {
		g.Publish = true
	}
	return g
}

// CanPublish reports whether the grants allow publishing a track of src.
func (g Grants) CanPublish(src TrackSource) bool {
	return g.Publish && (g.PublishSources == nil || slices.Contains(g.PublishSources, src))
}

// Sources lists the sources the grants allow publishing: none without
// Publish, all of them when PublishSources is nil.
func (g Grants) Sources() []TrackSource {
	switch {
	case !g.Publish:
		return []TrackSource{}
	case g.PublishSources == nil:
		return TrackSources()
	}
	return slices.Clone(g.PublishSources)
}

// Validate reports the first field (as the API names it) that makes g
// impossible.
func (g Grants) Validate() error {
	if g.PublishSources != nil && len(g.PublishSources) == 0 {
		return invalid("grants.publish_sources", "must name at least one source (set publish to false to publish nothing)")
	}
	for i, s := range g.PublishSources {
		if _, ok := ParseTrackSource(string(s)); !ok {
			return invalid("grants.publish_sources", "must be among %s, not %q", sourceNames(), s)
		}
		if slices.Contains(g.PublishSources[:i], s) {
			return invalid("grants.publish_sources", "names %q twice", s)
		}
	}
	if g.Hidden && (g.Publish || g.PublishData) {
		return invalid("grants.hidden", "a hidden participant publishes nothing: publish and publish_data must be false")
	}
	return nil
}

// equal reports whether g and o grant the same.
func (g Grants) equal(o Grants) bool {
	return g.Publish == o.Publish && g.Subscribe == o.Subscribe && g.PublishData == o.PublishData &&
		g.Hidden == o.Hidden && slices.Equal(g.Sources(), o.Sources())
}

// GrantsPatch changes grants field by field; nil fields keep theirs.
// PublishSources replaces the list as a whole: a pointer to nil lifts the
// limit (every source).
type GrantsPatch struct {
	Publish, Subscribe, PublishData, Hidden *bool
	PublishSources                          *[]TrackSource
}

// Apply returns g changed by p.
func (g Grants) Apply(p GrantsPatch) Grants {
	setIf(&g.Publish, p.Publish)
	setIf(&g.Subscribe, p.Subscribe)
	setIf(&g.PublishData, p.PublishData)
	setIf(&g.Hidden, p.Hidden)
	if p.PublishSources != nil {
		g.PublishSources = slices.Clone(*p.PublishSources)
	}
	return g
}

// GrantsFor are the grants of a new participant of role, changed by p. A
// patch that hides the participant without saying what it publishes turns
// the preset's publishing off: a hidden observer from any role's token.
func GrantsFor(role Role, p GrantsPatch) Grants {
	g := RoleGrants(role)
	if p.Hidden != nil && *p.Hidden {
		g.Publish, g.PublishData = false, false
	}
	return g.Apply(p)
}

// MaxMetadata is the largest metadata, in bytes, of a room or a
// participant.
const MaxMetadata = 64 << 10

// ValidateMetadata checks the metadata of a room or a participant; field
// names it in the error.
func ValidateMetadata(field, s string) error {
	if len(s) > MaxMetadata {
		return invalid(field, "must be at most %d bytes, not %d", MaxMetadata, len(s))
	}
	if !utf8.ValidString(s) {
		return invalid(field, "must be valid UTF-8")
	}
	return nil
}

// PublishRefusedError is a track a participant sent that its grants do
// not allow: the participant is told, naming the track; nothing of it is
// forwarded.
type PublishRefusedError struct {
	// Mid is the track's media section; ClientTrackID is the id its client
	// gave it (a=msid), and RID its simulcast layer if it has one.
	Mid, ClientTrackID, RID string
	Kind                    string
	Source                  TrackSource
	Reason                  string
}

func (e *PublishRefusedError) Error() string {
	return fmt.Sprintf("track %q (mid %s, %s %s) refused: %s", e.ClientTrackID, e.Mid, e.Source, e.Kind, e.Reason)
}

// Is makes a refused track an ErrForbidden.
func (e *PublishRefusedError) Is(target error) bool { return target == ErrForbidden }

// publishRefusal says why grants refuse a track of kind from src, or ""
// when they allow it.
func publishRefusal(g Grants, kind string, src TrackSource) string {
	switch {
	case src.Kind() != kind:
		return fmt.Sprintf("%s is a source of %s tracks, not %s", src, src.Kind(), kind)
	case !g.Publish:
		return "the participant may not publish"
	case !g.CanPublish(src):
		return fmt.Sprintf("the participant may not publish %s", src)
	}
	return ""
}
