package actors

// This file owns what the room tells others of its changes: signaling
// broadcasts to its members, webhook events to the outbox, and the changes
// batch that commits a state change with its events in one synced write.

import (
	"fmt"
	"time"

	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// changes collects what one state change writes, so that the room, the
// session, the member records and the webhook events commit together.
type changes struct {
	w persistence.Writes
}

// commit applies c synced; only then may the actor's state move on.
func (a *roomActor) commit(c *changes) error {
	if c.w.Empty() {
		return nil
	}
	ctx, cancel := a.storeCtx()
	defer cancel()
	if err := a.deps.cfg.Store.Apply(ctx, c.w); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if len(c.w.Events) > 0 && a.deps.cfg.OnEvents != nil {
		a.deps.cfg.OnEvents()
	}
	return nil
}

// event queues webhook event name for every destination that wants it.
func (a *roomActor) event(c *changes, room *recordpb.Room, name string, data any) {
	sessionID := ""
	if a.session != nil {
		sessionID = a.session.rec.Id
	}
	a.deps.enqueueEvent(&c.w, room, sessionID, name, a.now(), data)
}

// trackEvent queues a track's webhook event; the track itself is live
// state, so nothing else is written.
func (a *roomActor) trackEvent(m *member, name string, t TrackInfo) {
	if a.room == nil {
		return
	}
	c := &changes{}
	a.event(c, a.room, name, trackEventData{ParticipantID: string(m.info.ID), Identity: m.info.Identity, TrackID: string(t.ID), Kind: t.Kind, Codec: t.Codec})
	if err := a.commit(c); err != nil {
		a.log.Error("queue track event", "event", name, "err", err)
	}
}

// enqueueEvent adds an outbox entry to w for every destination that wants
// event name: the room's own webhook and the server's global ones.
func (r *Rooms) enqueueEvent(w *persistence.Writes, room *recordpb.Room, sessionID, name string, now time.Time, data any) {
	events, err := webhook.Deliveries(webhook.Event{Name: name, Time: now, RoomID: room.Id, SessionID: sessionID, Data: data},
		room.GetWebhook(), r.cfg.Webhooks)
	if err != nil {
		// Only a payload that is not a JSON object: a bug here, not bad input.
		r.cfg.Logger.Error("webhook event", "event", name, "err", err)
		return
	}
	w.Events = append(w.Events, events...)
}

// broadcast sends s to every member with a signaling channel but the one
// whose participant id is except.
func (a *roomActor) broadcast(except ParticipantID, s Signal) {
	for _, m := range a.memberList() {
		if m.info.ID != except && m.signal != nil {
			m.signal.Signal(s)
		}
	}
}
