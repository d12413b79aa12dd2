// Package httpapi is Troupe's HTTP edge: a Gin engine serving the REST API
// under /api/v1 (rooms, participants, session history and stats,
// recordings and the download of their files, webhook deliveries), the
// OpenAPI document (which also describes the webhook
// requests Troupe sends), /healthz, /readyz and /metrics (or, with
// Config.MetricsElsewhere, MetricsHandler for a listener of its own), the
// media signaling (the /rtc WebSocket, WHIP and WHEP; docs/signaling.md)
// and the web page (web/, embedded), which each room's link (its url) opens:
// for a public room, POST /rooms/{id}/token mints the join token of
// someone who has nothing but the link (publicjoin.go).
//
// It owns the wire format (the JSON shapes openapi.json documents), authentication of
// bearer tokens, request limits (body size, rate; per client address as
// clientaddr.go finds it behind trusted proxies), Idempotency-Key handling
// and the one mapping from errors to status codes (errors.go). It holds no
// room state: every room operation is a request to the room's actor, and
// every read of sessions or deliveries a call to the room actors' package,
// through the RoomService interface; the reply is rendered as JSON. Ids
// and reasons are typed in actors: a handler converts a path parameter, a
// query, a token's claim or a JSON field where it reads one, and writes
// plain strings back into the JSON. The responses kept for Idempotency-Key
// come through actors too (IdempotencyStore): httpapi never imports the
// store package (only its record schema, persistence/recordpb) nor Pebble.
// In a cluster, a request for a room another node owns (or on which
// placement put a new room) is proxied to that node (forward.go), and a
// signaling socket whose join message names such a room is relayed there
// (wsrelay.go): the only two places where a request leaves this node. A
// forward is signed with a key derived from the cluster's API key
// (forwardauth.go); a request that claims to be one without a valid
// signature is served as an outside request. The
// owner may come from the node's hint (a watch of the owner keys): a node
// that receives a forwarded request asks etcd, and if yet another node owns
// the room it names it (OwnerHeader, or errorMsg.Owner for a relayed join)
// for the forwarder to retry there once. An owner that does not answer
// within Config.ForwardTimeout gets the caller a 503 with Retry-After; a
// create placed on a node that cannot be reached is created here. A
// room object's node_id is this node for a room its actors answered for,
// and the owners read from the cluster in a list.
//
// Only cmd/troupe imports this package. Its sub-package auth mints and
// verifies the tokens and knows nothing of HTTP.
package httpapi
