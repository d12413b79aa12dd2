package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// deliveryJSON is a webhook delivery: one event bound for one endpoint. It
// never carries the signing secret. The attempt fields are recorded when a
// delivery is given up on; a pending delivery's attempts are counted by the
// deliverer in memory, so they render null.
type deliveryJSON struct {
	ID            string     `json:"id"`
	Event         string     `json:"event"`
	Status        string     `json:"status"`
	RoomID        string     `json:"room_id"`
	SessionID     *string    `json:"session_id"`
	Endpoint      string     `json:"endpoint"`
	CreatedAt     time.Time  `json:"created_at"`
	Attempts      *uint32    `json:"attempts"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastStatus    *uint32    `json:"last_status"` // null: no response
	LastError     *string    `json:"last_error"`
	FailedAt      *time.Time `json:"failed_at"`
}

type deliveryListJSON struct {
	Deliveries []deliveryJSON `json:"deliveries"`
	Total      int            `json:"total"`
	Limit      int            `json:"limit"`
	Offset     int            `json:"offset"`
}

// The delivery statuses as the API spells them.
const (
	deliveryPending = "pending"
	deliveryFailed  = "failed"
)

func toDeliveryJSON(e *recordpb.WebhookEvent, status string) deliveryJSON {
	out := deliveryJSON{
		ID:            e.GetId(),
		Event:         e.GetEvent(),
		Status:        status,
		RoomID:        e.GetRoomId(),
		Endpoint:      e.GetEndpoint(),
		CreatedAt:     e.GetCreatedAt().AsTime().UTC(),
		LastAttemptAt: utcTime(e.GetLastAttemptAt()),
		FailedAt:      utcTime(e.GetFailedAt()),
	}
	if id := e.GetSessionId(); id != "" {
		out.SessionID = &id
	}
	if n := e.GetAttempts(); n > 0 {
		out.Attempts = &n
	}
	if st := e.GetLastStatus(); st != 0 {
		out.LastStatus = &st
	}
	if msg := e.GetLastError(); msg != "" {
		out.LastError = &msg
	}
	return out
}

// listDeliveries lists webhook deliveries by status, failed by default:
// pending ones by room and endpoint in delivery order, failed ones newest
// failure first.
func (s *Server) listDeliveries(c *gin.Context) error {
	q := actors.DeliveryQuery{Status: actors.DeliveriesFailed}
	query := c.Request.URL.Query()
	var err error
	if q.Limit, q.Offset, err = pageParams(query); err != nil {
		return err
	}
	status := deliveryFailed
	if query.Has("status") {
		switch status = query.Get("status"); status {
		case deliveryFailed:
		case deliveryPending:
			q.Status = actors.DeliveriesPending
		default:
			return fieldError("status", "must be pending or failed")
		}
	}
	list, total, err := s.cfg.Rooms.WebhookDeliveries(c.Request.Context(), q)
	if err != nil {
		return err
	}
	out := deliveryListJSON{Deliveries: make([]deliveryJSON, len(list)), Total: total, Limit: q.Limit, Offset: q.Offset}
	for i, e := range list {
		out.Deliveries[i] = toDeliveryJSON(e, status)
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}
