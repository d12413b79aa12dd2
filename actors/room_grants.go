package actors

// This file owns the changes of a live participant (the API's PATCH of a
// participant): its grants, with what each change does at once, and its
// metadata, kept in its member record and told to the room.

import (
	"context"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// ReasonHidden is the reason of the participant-left the others are sent
// when a participant is made hidden: it is still in the room, but no
// longer shown to them. It is never a stay's leave reason.
const ReasonHidden LeaveReason = "hidden"

// ParticipantUpdate changes a live participant; nil fields keep theirs.
type ParticipantUpdate struct {
	Grants   *GrantsPatch
	Metadata *string
}

// SignalParticipantUpdated says a participant's metadata or grants
// changed. A hidden participant's changes are told to itself alone.
type SignalParticipantUpdated struct{ Participant ParticipantInfo }

// SignalRoomUpdated says the room's record changed (its metadata, its
// config...) through the API.
type SignalRoomUpdated struct {
	Room *recordpb.Room
	// ParticipantCount counts the participants shown (not the hidden).
	ParticipantCount int
}

func (SignalParticipantUpdated) isSignal() {}
func (SignalRoomUpdated) isSignal()        {}

type (
	updateParticipant struct {
		id  ParticipantID
		upd ParticipantUpdate
	}
	participantInfoReply struct {
		info ParticipantInfo
		err  error
	}
)

// UpdateParticipant changes a live participant's grants (field by field)
// and metadata, and returns it as it is then. What the change revokes
// stops before the reply: tracks of a source no longer allowed are
// unpublished, a participant no longer subscribing is sent nothing more,
// one that may no longer send data has what it sends refused. A
// participant made hidden is shown to the others as gone (participant-left
// with reason hidden), one made visible as joined. Everyone it is shown to
// is sent participant-updated, and the participant-updated webhook fires.
func (r *Rooms) UpdateParticipant(ctx context.Context, roomID RoomID, id ParticipantID, upd ParticipantUpdate) (ParticipantInfo, error) {
	if err := ValidateRoomID(roomID); err != nil {
		return ParticipantInfo{}, ErrRoomNotFound
	}
	if upd.Metadata != nil {
		if err := ValidateMetadata("metadata", *upd.Metadata); err != nil {
			return ParticipantInfo{}, err
		}
	}
	reply, err := requestAs[*participantInfoReply](ctx, r, roomID, &updateParticipant{id: id, upd: upd})
	if err != nil {
		return ParticipantInfo{}, err
	}
	return reply.info, reply.err
}

func (a *roomActor) updateParticipant(ctx actor.Context, msg *updateParticipant) *participantInfoReply {
	m, err := a.findMember(msg.id)
	if err != nil {
		return &participantInfoReply{err: err}
	}
	grants, metadata := m.info.Grants, m.info.Metadata
	if msg.upd.Grants != nil {
		grants = grants.Apply(*msg.upd.Grants)
	}
	if err := grants.Validate(); err != nil {
		return &participantInfoReply{err: err}
	}
	if msg.upd.Metadata != nil {
		metadata = *msg.upd.Metadata
	}
	if grants.equal(m.info.Grants) && metadata == m.info.Metadata {
		return &participantInfoReply{info: a.listed(m)}
	}
	next := m.info
	next.Grants, next.Metadata = grants, metadata
	if err := a.recordUpdate(next); err != nil {
		return &participantInfoReply{err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
	}
	old := m.info.Grants
	m.info = next
	a.applyGrants(ctx, m, old)
	if grants.Hidden {
		if m.signal != nil {
			m.signal.Signal(SignalParticipantUpdated{Participant: m.snapshot()})
		}
	} else {
		a.broadcast("", SignalParticipantUpdated{Participant: m.snapshot()})
	}
	a.log.Info("participant updated", "participant", m.info.ID, "publish", grants.Publish, "subscribe", grants.Subscribe,
		"publish_data", grants.PublishData, "hidden", grants.Hidden, "metadata_bytes", len(metadata))
	return &participantInfoReply{info: a.listed(m)}
}

// listed is m as the room's list of live participants shows it.
func (a *roomActor) listed(m *member) ParticipantInfo {
	info := m.snapshot()
	info.Receiving = m.stats.receiving()
	info.AudioLevel, info.Speaking = a.speakerLevel(m.info.ID)
	return info
}

// recordUpdate writes a participant's new metadata into its member
// record, with the participant-updated event, before anything changes.
func (a *roomActor) recordUpdate(info ParticipantInfo) error {
	c := &changes{}
	var rec *recordpb.SessionMember
	if s := a.session; s != nil {
		if cur, ok := s.members[string(info.ID)]; ok {
			rec = proto.Clone(cur).(*recordpb.SessionMember)
			rec.Metadata = info.Metadata
			if rec.Metadata != cur.Metadata {
				c.w.Members = append(c.w.Members, rec)
			}
		}
	}
	data := participantData(info, rec)
	grants := NewGrantsJSON(info.Grants)
	data.Grants = &grants
	a.event(c, a.room, "participant-updated", data)
	if err := a.commit(c); err != nil {
		return err
	}
	if len(c.w.Members) > 0 {
		a.session.members[string(info.ID)] = rec
	}
	return nil
}

// applyGrants does at once what a change of m's grants from old means:
// m.info has the new ones.
func (a *roomActor) applyGrants(ctx actor.Context, m *member, old Grants) {
	g := m.info.Grants
	// Tracks first: a participant made hidden has none left to show.
	for _, t := range slices.Clone(m.tracks) {
		if !g.CanPublish(t.info.Source) {
			a.unpublish(ctx, m, t.info.ID)
		}
	}
	ctx.Send(m.pid, &setGrants{grants: g})
	if m.data != nil {
		m.data.SetMaySend(g.PublishData)
	}
	switch {
	case old.Subscribe == g.Subscribe || m.kind == ClientWHIP:
	case g.Subscribe:
		a.subscribeToAll(ctx, m)
	default:
		for _, o := range a.memberList() {
			for _, t := range o.tracks {
				if o != m {
					ctx.Send(m.pid, &unsubscribe{trackID: t.info.ID})
				}
			}
		}
	}
	switch {
	case !old.Hidden && g.Hidden:
		a.lowerHand(m.info.ID)
		a.broadcast(m.info.ID, SignalParticipantLeft{ParticipantID: m.info.ID, Identity: m.info.Identity, Reason: ReasonHidden})
	case old.Hidden && !g.Hidden:
		a.broadcast(m.info.ID, SignalParticipantJoined{Participant: m.snapshot()})
	}
}
