// Package etcdstore owns Troupe's store of record in cluster mode: a
// persistence.Backend on etcd, holding the same records as the Pebble store
// of a single node (rooms, sessions and their participant history with
// their listing indexes, recordings, the webhook outbox and failed
// deliveries, the idempotency records of the HTTP API), and the cluster's room ownership: a
// node's lease, the owner key of each room, and the fence that keeps a node
// from writing a room it no longer owns. It passes the conformance suite of
// persistence/storetest.
//
// Values are those of the persistence package (its exported codec: a schema
// byte, then the record's protobuf), so a record reads the same from either
// backend. Nothing outside this package knows the key layout.
//
// # Key layout
//
// Every key starts with Config.Prefix (P), so that deployments or test runs
// can share one etcd.
//
//	kind             key                                            value
//	---------------  ---------------------------------------------  ---------------------------------
//	layout           P layout                                       layout version byte (1)
//	room             P room/<id>                                    persistence room value
//	room listing     P roomidx/all/<created><id>                    empty
//	room listing     P roomidx/st/<status>/<created><id>            empty
//	session          P session/<id>                                 persistence session value
//	session listing  P sesidx/all/<newest><id>                      empty
//	session listing  P sesidx/st/<status>/<newest><id>              empty
//	session listing  P sesidx/room/<room>/<newest><id>              empty
//	session listing  P sesidx/rst/<room>/<status>/<newest><id>      empty
//	member           P member/<session>/<joined><participant id>    persistence member value
//	recording        P rec/r/<id>                                   persistence recording value
//	rec. listing     P rec/all/<newest><id>                         empty
//	rec. listing     P rec/st/<status>/<newest><id>                 empty
//	rec. listing     P rec/room/<room>/<newest><id>                 empty
//	rec. listing     P rec/ses/<session>/<newest><id>               empty (only with a session)
//	Seq counter      P seq/<room id>                                last Seq taken, 8 bytes big-endian
//	webhook outbox   P wh/out/<room>/<endpoint>/<seq>               persistence webhook event value
//	failed webhook   P wh/failed/<newest><delivery id>              the event without its secret
//	delivery claim   P hookclaim/<room id>                          delivering node's id, under its lease
//	idempotency      P idem/<scope>/<key>                           persistence idempotency value
//	room owner       P owner/<room id>                              owner's node id, under its lease
//	node             P node/<node id>                               the node's record (JSON: address, load, lease id), under its lease
//	key fingerprint  P keyprint                                     the API key pair's fingerprint, set once
//
// <created> and <joined> are Unix nanoseconds as 8 big-endian bytes with the
// sign bit flipped (byte order is time order); <newest> has every bit
// flipped (newest first). An id at the end of a key is verbatim; a room,
// session, scope or endpoint in the middle of one is path-escaped (no '/'),
// so the next '/' ends it. <status> is the enum's decimal number. <seq> is 8
// bytes big-endian, so one queue (one room's deliveries to one endpoint) is
// one range in Seq order, and the outbox lists queue by queue.
//
// # Writes
//
// Every Apply is one etcd transaction: the records, their listing entries
// and the webhook events reporting the change commit together or not at
// all. Apply first reads what it replaces (old records, to find their old
// listing entries) and the Seq counters of the rooms it queues events for,
// then commits on condition that none of them changed since (mod revision).
// A writer that lost that race reads again and retries: writers of one
// record, or of one room's outbox, are ordered, and writers of different
// rooms never wait for each other. Because a room's counter is taken and
// its events committed in one transaction, a queue's events commit in Seq
// order, so a deliverer reading a queue's head never skips one being
// committed. A counter is deleted with its room; one created again starts
// from the store's revision (see seqShift), above every Seq given before.
//
// A cluster node (Config.NodeID) fences its room writes: the transaction
// also compares the owner key of every room it touches (a session's room, a
// member's session's room, an event's room) with the node's id and lease.
// A node that lost a room (its lease expired while it was cut off, and
// another node claimed the room) writes nothing: Apply returns a
// *NotOwnerError. Idempotency records are not room writes and are not
// fenced. Webhook acks and failures are fenced on the room's delivery
// claim instead (see DeliveryClaims): one node at a time delivers a room's
// queues, and one that lost the claim settles nothing.
//
// A new room is claimed in the transaction that creates it (ClaimCreate):
// the owner key under the node's lease, the room, its listing entries, its
// events and its Seq counter, on condition that no node owns the room and
// nothing of it is stored: one raft proposal and no read per create. Its
// events take their Seq from the newest revision the Store has seen, on
// condition that no outbox entry of the room is newer (see create.go).
//
// A room no node owns is placed by the node that activates it (Place,
// place.go): that node writes the owner key for the node it chose, under
// the chosen node's lease, whose id the chosen node's record carries. The
// chosen node then finds the room its own. A node follows the node records
// with a watch (FollowNodes), so that placing and forwarding read them from
// memory, and the owner keys (FollowOwners, an OwnerView), so that a
// request for a room another node owns is forwarded without a claim that
// would fail: a hint only, a moment behind etcd, never a claim.
//
// A recording's record is its room's, written by the room's owner, but the
// files of a part lost with its node are that node's: once it has
// finalized them (after a restart), it writes their figures into the
// record by SettleRecordingFiles, unfenced, on condition that the record
// did not change since it read it. Those entries are marked settled, and
// Apply keeps them when the owner writes the record again from its copy,
// which lists the files as they were (keepSettledFiles): each writer's
// retry reads the other's write, so neither undoes it.
//
// # Takeover
//
// A room whose owner key went with its node's lease (not by Release) and
// that still has a session in progress needs another node at once: its
// members' records are open and its timers ran on the lost node.
// WatchLostRooms finds such rooms (a scan at start, then a watch of the
// owner keys with their previous values, whose lease it looks up) and
// hands each to the node's takeover after a short random wait; the claim
// picks one node, whose fenced write closes what the lost node left. See
// watch.go.
//
// # Listings and counts
//
// A listing reads the keys of its index range (keys only) up to the page's
// end, with etcd counting the whole range for Total in the same read, then
// the page's records at the same revision, in read-only transactions of up
// to 64 reads. etcd has no seek by position, so a page at offset n
// transfers n keys (never their records); an index per filter (status,
// room, room and status) keeps the range to what the filter matches.
// Counting by etcd, rather than in memory as the Pebble store does, keeps
// totals right when other nodes write: the count is etcd's walk of its
// in-memory index over the range, no data transferred. Counter keys updated
// by every write would be exact too, but every writer of every room would
// then contend for them.
//
// WebhookBacklog must answer without I/O: the Store counts the outbox and
// the failed records at New, counts its own writes as they commit, and
// follows the rest with a watch of the wh/ range (see backlog.go).
//
// Idempotency records expire by etcd leases, shared by the records that
// expire in the same sixteenth of the TTL (see idempotency.go), so no node
// runs a pruning loop.
//
// # Compatibility
//
// The Store uses only the KV (Range, Put, DeleteRange, Txn with comparisons
// of values, mod revisions and leases, and nested Txn for the delivery
// claims), Lease and Watch APIs of etcd 3.4,
// so it runs against etcd 3.4 servers as well as later ones. A transaction
// holds at most etcd's --max-txn-ops operations (128 by default): a Writes
// larger than that is refused by etcd and writes nothing.
//
// Only a cluster's wiring imports this package; it imports persistence and
// etcd's client, never actors, httpapi or protoactor.
package etcdstore
