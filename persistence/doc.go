// Package persistence owns the store of record: what a backend must keep and
// promise (Backend), and the single node's backend, one embedded Pebble
// database in the data directory: rooms, sessions and their participant
// history with their listing indexes, recordings and their listing indexes,
// the webhook outbox and failed deliveries, and the idempotency records of
// the HTTP API. A cluster keeps the same records in etcd instead
// (persistence/etcdstore), and no node of a cluster opens Pebble for them.
//
// Apply writes several records in one synced batch, so that a room actor's
// state change and the webhook events reporting it are stored together or
// not at all.
//
// Backend (backend.go) names what any store of record provides and states
// its contracts; Store is the Pebble backend of a single node, and a
// cluster's etcd backend implements the same interface. The conformance
// suite in persistence/storetest checks a backend against those contracts;
// conformance_test.go runs it on Store. The etcd backend
// (persistence/etcdstore) stores the same values: export.go gives it this
// package's encodings and checks, so that both hold records to one set of
// rules.
//
// Nothing outside this package knows the key layout (see keys.go) or the
// value encodings (see codec.go). Every write that acknowledges an API call is
// synced to the write-ahead log before the method returns; concurrent writers
// share WAL fsyncs through Pebble's commit pipeline, so this package never
// serializes commits behind a lock of its own.
//
// The actors package imports persistence (room actors load and save their
// records here) and cmd opens the Store; persistence itself imports neither
// actors nor httpapi, gin or protoactor.
package persistence
