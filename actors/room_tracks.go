package actors

// This file owns tracks and their routing: who publishes what (each
// member's tracks, in publication order), who subscribes to it (every
// other member that receives media), and mutes. The media itself never
// passes through here: a subscription hands the track's forwarder to the
// subscriber's actor, and packets flow in rtc.

import (
	"slices"
	"strconv"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/rtc"
)

// Messages about tracks: from a participant to its room, and the REST
// API's mute.
type (
	trackPublished struct {
		participantID ParticipantID
		track         TrackInfo
		src           *rtc.Track
	}
	trackEnded struct {
		participantID ParticipantID
		trackID       TrackID
	}
	trackMuted struct {
		participantID   ParticipantID
		trackID         TrackID
		muted, byServer bool
	}
	muteParticipant struct {
		id    ParticipantID
		kind  string
		muted bool
	}
)

type roomTrack struct {
	info TrackInfo
	src  *rtc.Track
	// layersSent is what the members were last told of its layers
	// (layersKey; room_layers.go).
	layersSent string
}

// snapshot describes the track with its layers as they are now.
func (t *roomTrack) snapshot() TrackInfo {
	info := t.info
	info.Layers = layerInfos(t.src)
	info.Simulcast = info.Simulcast || len(info.Layers) > 1
	return info
}

// layerInfos describes a track's layers, when it has several.
func layerInfos(src *rtc.Track) []LayerInfo {
	layers := src.Layers()
	if len(layers) < 2 && (len(layers) == 0 || layers[0].RID == "") {
		return nil
	}
	out := make([]LayerInfo, len(layers))
	for i, l := range layers {
		out[i] = LayerInfo{RID: l.RID, Width: l.Width, Height: l.Height, Bitrate: l.Bitrate, Active: l.Active}
	}
	return out
}

// receivesMedia reports whether the member subscribes to the room's
// tracks: WHIP clients only publish, and a member without the subscribe
// grant receives nothing.
func (m *member) receivesMedia() bool { return m.kind != ClientWHIP && m.info.Grants.Subscribe }

// subscribeToAll subscribes a member who just entered to every track
// already published in the room, under the room's caps, if it
// subscribes automatically (see room_subscriptions.go).
func (a *roomActor) subscribeToAll(ctx actor.Context, m *member) {
	if !m.receivesMedia() {
		return
	}
	ctx.Send(m.pid, a.caps())
	if !m.autoSubscribe {
		return
	}
	for _, o := range a.memberList() {
		for _, t := range o.tracks {
			a.subscribeMember(ctx, m, t)
		}
	}
}

func (a *roomActor) trackPublished(ctx actor.Context, msg *trackPublished) {
	m, ok := a.members[msg.participantID]
	if !ok || m.leaveReason != "" {
		return // it left meanwhile; its own cleanup closes the forwarder
	}
	if !m.info.Grants.CanPublish(msg.track.Source) {
		return // revoked meanwhile: the participant drops it at its setGrants
	}
	t := &roomTrack{info: msg.track, src: msg.src}
	m.tracks = append(m.tracks, t)
	a.trackEvent(m, "track-published", msg.track)
	a.recordTrack(m, t)
	a.broadcast("", SignalTrackPublished{ParticipantID: m.info.ID, Track: t.describe()})
	a.armSpeakers()
	a.armLayerChecks()
	a.startVideoOff(ctx, m, msg.track)
	for _, o := range a.memberList() {
		if o != m && o.receivesMedia() && o.autoSubscribe {
			a.subscribeMember(ctx, o, t)
		}
	}
}

func (a *roomActor) unpublish(ctx actor.Context, m *member, trackID TrackID) {
	for i, t := range m.tracks {
		if t.info.ID != trackID {
			continue
		}
		m.tracks = append(m.tracks[:i], m.tracks[i+1:]...)
		a.unrecordTrack(trackID)
		a.trackEvent(m, "track-unpublished", t.info)
		a.broadcast(m.info.ID, SignalTrackUnpublished{ParticipantID: m.info.ID, TrackID: trackID})
		for _, o := range a.memberList() {
			a.unsubscribeMember(ctx, o, trackID)
		}
		return
	}
}

// muteParticipant has a member's actor mute or unmute its tracks of a kind;
// the actor reports each change back as trackMuted.
func (a *roomActor) muteParticipant(ctx actor.Context, msg *muteParticipant) *errorReply {
	m, err := a.findMember(msg.id)
	if err != nil {
		return &errorReply{err: err}
	}
	ctx.Send(m.pid, &setMuted{kind: msg.kind, muted: msg.muted, byServer: true})
	return &errorReply{}
}

func (a *roomActor) trackMuted(msg *trackMuted) {
	m, ok := a.members[msg.participantID]
	if !ok {
		return
	}
	for _, t := range m.tracks {
		if t.info.ID == msg.trackID {
			t.info.Muted = msg.muted
		}
	}
	a.broadcast("", SignalTrackMuted{ParticipantID: msg.participantID, TrackID: msg.trackID, Muted: msg.muted, ByServer: msg.byServer})
}

// qualityLines is the room's quality cap in lines ("720p": 720), which
// limits the simulcast layers its members receive; 0 for none.
func (a *roomActor) qualityLines() int {
	if a.room == nil || a.room.GetConfig() == nil {
		return 0
	}
	n, _ := QualityLines(a.room.GetConfig().GetQuality())
	return n
}

// QualityLines is the lines of a room quality ("720p": 720), or false for
// a word that is not one.
func QualityLines(q string) (int, bool) {
	if !slices.Contains(qualities, q) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(q, "p"))
	return n, err == nil
}

// Qualities lists the room qualities, lowest first.
func Qualities() []string { return slices.Clone(qualities) }

// fps is the room's frame rate cap, which drops the VP8 temporal layers
// above it; 0 for none.
func (a *roomActor) fps() int {
	if a.room == nil || a.room.GetConfig() == nil {
		return 0
	}
	return int(a.room.GetConfig().GetFps())
}

// caps is the room's caps on what its members receive.
func (a *roomActor) caps() *qualityCap {
	return &qualityCap{lines: a.qualityLines(), fps: a.fps()}
}

// applyQuality tells every member that receives media the room's quality
// and frame rate caps, after a change of the room's config.
func (a *roomActor) applyQuality(ctx actor.Context) {
	caps := a.caps()
	for _, m := range a.memberList() {
		if m.receivesMedia() {
			ctx.Send(m.pid, caps)
		}
	}
}

func newTrackID() TrackID { return TrackID("TR_" + randomID()) }
