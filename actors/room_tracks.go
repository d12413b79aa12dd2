package actors

// This file owns tracks and their routing: who publishes what (each
// member's tracks, in publication order), who subscribes to it (every
// other member that receives media), and mutes. The media itself never
// passes through here: a subscription hands the track's forwarder to the
// subscriber's actor, and packets flow in rtc.

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/rtc"
)

// Messages about tracks: from a participant to its room, and the REST
// API's mute.
type (
	trackPublished struct {
		participantID ParticipantID
		track         TrackInfo
		fwd           *rtc.Forwarder
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
	fwd  *rtc.Forwarder
}

// receivesMedia reports whether the member subscribes to the room's
// tracks: WHIP clients only publish.
func (m *member) receivesMedia() bool { return m.kind != ClientWHIP }

// subscribeToAll subscribes a member who just entered to every track
// already published in the room.
func (a *roomActor) subscribeToAll(ctx actor.Context, m *member) {
	if !m.receivesMedia() {
		return
	}
	for _, o := range a.memberList() {
		for _, t := range o.tracks {
			ctx.Send(m.pid, &subscribe{track: t.info, fwd: t.fwd})
		}
	}
}

func (a *roomActor) trackPublished(ctx actor.Context, msg *trackPublished) {
	m, ok := a.members[msg.participantID]
	if !ok || m.leaveReason != "" {
		return // it left meanwhile; its own cleanup closes the forwarder
	}
	m.tracks = append(m.tracks, &roomTrack{info: msg.track, fwd: msg.fwd})
	a.trackEvent(m, "track-published", msg.track)
	a.broadcast("", SignalTrackPublished{ParticipantID: m.info.ID, Track: msg.track})
	a.startVideoOff(ctx, m, msg.track)
	for _, o := range a.memberList() {
		if o != m && o.receivesMedia() {
			ctx.Send(o.pid, &subscribe{track: msg.track, fwd: msg.fwd})
		}
	}
}

func (a *roomActor) unpublish(ctx actor.Context, m *member, trackID TrackID) {
	for i, t := range m.tracks {
		if t.info.ID != trackID {
			continue
		}
		m.tracks = append(m.tracks[:i], m.tracks[i+1:]...)
		a.trackEvent(m, "track-unpublished", t.info)
		a.broadcast(m.info.ID, SignalTrackUnpublished{ParticipantID: m.info.ID, TrackID: trackID})
		for _, o := range a.memberList() {
			if o != m && o.receivesMedia() {
				ctx.Send(o.pid, &unsubscribe{trackID: trackID})
			}
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

func newTrackID() TrackID { return TrackID("TR_" + randomID()) }
