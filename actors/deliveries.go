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

// WebhookDeliveries lists webhook deliveries by status, with the total.
// Failed ones come newest failure first and carry no secret.
func (r *Rooms) WebhookDeliveries(ctx context.Context, q DeliveryQuery) ([]*recordpb.WebhookEvent, int, error) {
	status := persistence.DeliveryPending
	switch q.Status {
	case DeliveriesPending:
	case DeliveriesFailed:
		status = persistence.DeliveryFailed
	default:
		return nil, 0, invalid("status", "must be pending or failed")
	}
	page, err := r.cfg.Store.ListWebhookDeliveries(ctx, persistence.DeliveryQuery{Status: status, Limit: q.Limit, Offset: q.Offset})
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook deliveries: %w", err)
	}
	for _, e := range page.Deliveries {
		e.Secret = "" // never leaves the server
	}
	return page.Deliveries, page.Total, nil
}
