package actors

import (
	"context"
	"fmt"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// DeliveryStatus selects webhook deliveries: waiting in the outbox, or
// given up on after their maximum age.
type DeliveryStatus int

const (
	DeliveriesPending DeliveryStatus = iota + 1
	DeliveriesFailed
)

// DeliveryQuery selects a page of webhook deliveries.
type DeliveryQuery struct {
	Status        DeliveryStatus
	Limit, Offset int
}

// deliveryStore is what listing deliveries needs; *persistence.Store is one.
type deliveryStore interface {
	ListWebhookDeliveries(ctx context.Context, q persistence.DeliveryQuery) (persistence.DeliveryPage, error)
}

// WebhookDeliveries lists webhook deliveries by status, with the total.
// Failed ones come newest failure first and carry no secret.
func (r *Rooms) WebhookDeliveries(ctx context.Context, q DeliveryQuery) ([]*recordpb.WebhookEvent, int, error) {
	ds, ok := r.cfg.Store.(deliveryStore)
	if !ok {
		return nil, 0, fmt.Errorf("actors: the store keeps no webhook deliveries")
	}
	status := persistence.DeliveryPending
	switch q.Status {
	case DeliveriesPending:
	case DeliveriesFailed:
		status = persistence.DeliveryFailed
	default:
		return nil, 0, invalid("status", "must be pending or failed")
	}
	page, err := ds.ListWebhookDeliveries(ctx, persistence.DeliveryQuery{Status: status, Limit: q.Limit, Offset: q.Offset})
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook deliveries: %w", err)
	}
	for _, e := range page.Deliveries {
		e.Secret = "" // never leaves the server
	}
	return page.Deliveries, page.Total, nil
}
