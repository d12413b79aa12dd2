package webhook

import (
	"context"
	"errors"
	"sync"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Claims decides which node delivers which rooms' queues when the nodes of a
// cluster share one outbox: one node at a time holds a room's claim and
// drains its queues, so that they go out once and in order. A nil
// Config.Claims is a node alone with its outbox, which holds every claim.
//
// The Store must refuse AckWebhookEvent and FailWebhookEvent for the events
// of a room whose claim this node does not hold, so that a node that lost a
// claim, and has not noticed yet, settles nothing under the next holder.
type Claims interface {
	// Claim returns, of rooms, those whose queues this node is to deliver:
	// those whose claims it holds, and those no node held, which it claims
	// now. lost is closed when these claims are lost (the node stops
	// delivering their rooms at once); a later Claim may hold claims under
	// a new lost.
	Claim(ctx context.Context, rooms []string) (held []string, lost <-chan struct{}, err error)
	// Release gives up this node's claims on rooms whose queues it
	// emptied, so that the node that next finds events of one of them may
	// take it.
	Release(ctx context.Context, rooms []string) error
	// Freed has a value when claims this node may now take have gone (one
	// it was refused at its last Claim, or those of a node that left):
	// time to read the outbox again.
	Freed() <-chan struct{}
}

// holder is Run's account of the claims this node holds. Only Run's
// goroutine uses it.
type holder struct {
	claims Claims // nil: every claim
	run    context.Context
	held   map[string]bool // rooms whose queues this node delivers
	lost   <-chan struct{} // closed when the held claims are lost; nil for none
	// ctx is what the attempts on held rooms run under: canceled as soon as
	// the claims are lost, so that the node stops delivering at once, even
	// while Run waits for etcd.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines of follow
}

func newHolder(claims Claims, run context.Context) *holder {
	h := &holder{claims: claims, run: run, held: make(map[string]bool)}
	h.ctx, h.cancel = context.WithCancel(run)
	return h
}

// follow makes lost the channel of the claims held, and cancels ctx when it
// is closed.
func (h *holder) follow(lost <-chan struct{}) {
	h.lost = lost
	ctx, cancel := h.ctx, h.cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		select {
		case <-lost:
			cancel()
		case <-ctx.Done():
		}
	}()
}

// stop cancels what runs under the claims, and waits for follow's
// goroutines.
func (h *holder) stop() {
	h.cancel()
	h.wg.Wait()
}

// lose forgets every claim, cancels the attempts made under them, and
// returns their rooms.
func (h *holder) lose() []string {
	rooms := h.heldRooms()
	clear(h.held)
	h.lost = nil
	h.cancel()
	h.ctx, h.cancel = context.WithCancel(h.run)
	return rooms
}

// claimed returns, of heads read from the outbox, those of the rooms whose
// queues this node is to deliver, claiming the rooms no node held, and the
// rooms whose claims it no longer holds.
func (d *Deliverer) claimed(ctx context.Context, h *holder, heads []*recordpb.WebhookEvent) (kept []*recordpb.WebhookEvent, dropped []string, err error) {
	if h.claims == nil {
		for _, e := range heads {
			h.held[e.RoomId] = true
		}
		return heads, nil, nil
	}
	if len(heads) == 0 {
		return nil, nil, nil
	}
	var rooms []string
	asked := make(map[string]bool)
	for _, e := range heads {
		if !asked[e.RoomId] {
			asked[e.RoomId] = true
			rooms = append(rooms, e.RoomId)
		}
	}
	held, lost, err := h.claims.Claim(ctx, rooms)
	if err != nil {
		return nil, nil, err
	}
	if lost != h.lost {
		// Claims under a new lease: those of the old one are gone.
		if h.lost != nil {
			dropped = h.lose()
		}
		h.follow(lost)
	}
	now := make(map[string]bool, len(held))
	for _, r := range held {
		now[r] = true
	}
	for _, r := range rooms {
		if h.held[r] && !now[r] {
			delete(h.held, r)
			dropped = append(dropped, r)
		}
	}
	for _, e := range heads {
		switch {
		case !now[e.RoomId]:
			continue
		case !h.held[e.RoomId]:
			// Claimed just now: the head was read before, and the node
			// that held the room may have delivered it since.
			fresh, err := d.cfg.Store.OutboxHead(ctx, e.RoomId, e.Endpoint)
			if errors.Is(err, persistence.ErrNotFound) {
				continue
			}
			if err != nil {
				// Left to the next read; the claim is released as idle.
				if ctx.Err() == nil {
					d.log.Warn("reading the webhook outbox", "err", err)
				}
				continue
			}
			e = fresh
		}
		kept = append(kept, e)
	}
	for r := range now {
		h.held[r] = true
	}
	return kept, dropped, nil
}

// heldRooms returns the rooms whose claims this node holds.
func (h *holder) heldRooms() []string {
	rooms := make([]string, 0, len(h.held))
	for r := range h.held {
		rooms = append(rooms, r)
	}
	return rooms
}

// releaseIdle gives up the claims of those of rooms that have no queue left
// in s, together.
func (d *Deliverer) releaseIdle(ctx context.Context, h *holder, s *scheduler, rooms []string) {
	var idle []string
	for _, r := range rooms {
		if h.held[r] && s.rooms[r] == 0 {
			delete(h.held, r)
			idle = append(idle, r)
		}
	}
	if h.claims == nil || len(idle) == 0 {
		return
	}
	if err := h.claims.Release(ctx, idle); err != nil && ctx.Err() == nil {
		// The claims stay with this node until its next Claim of their
		// rooms, or its lease, ends them.
		d.log.Warn("releasing rooms' webhook deliveries", "rooms", len(idle), "err", err)
	}
}
