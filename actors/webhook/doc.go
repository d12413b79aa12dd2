// Package webhook delivers Troupe's webhook events: it signs them
// (Troupe-Signature, see Sign and Verify), decides which destinations want
// an event (Deliveries), guards against endpoints on private networks
// (Guard, CheckEndpoint, NewClient), and runs the Deliverer, which drains the
// webhook outbox that persistence keeps.
//
// The outbox is the source of truth: a room actor queues an event's
// deliveries in the same store batch as the change the event reports, then
// calls Deliverer.Notify. The Deliverer reads the oldest pending delivery of
// each queue (one room's deliveries to one endpoint), posts it, and on a 2xx
// removes it; on a failure it retries that queue with exponential backoff
// and jitter until the delivery is Config.MaxAge old, then keeps it as a
// failed record. So deliveries go out in order per room and endpoint, at
// least once, and survive restarts with their delivery ids. Endpoints (by
// scheme, host and port) take turns for a bounded number of requests in
// flight; those that do not answer get one request at a time from a
// bounded allowance of their own, so that they hold up only their own
// queues (see schedule.go).
//
// In a cluster the nodes share one outbox, and one node at a time delivers
// a room's queues: the node holding the room's claim (Config.Claims). The
// first node to find a room's queues unclaimed takes the claim (in the
// normal case the room's owner, which is told of the events it queues; any
// node for a room that stopped or whose owner died), and releases it once
// it has emptied them. A claim goes with its node's lease: that node stops
// its attempts at once, and another node, told that the node left, takes
// the queues up at their heads. A delivery is posted twice only across such
// a takeover, with the same delivery id; the first copies of a queue's
// deliveries arrive in order, since the next node posts a delivery only
// after the one before it was acknowledged.
//
// The actors package imports webhook; webhook imports persistence, never
// actors or httpapi.
package webhook
