// Package persistence owns Troupe's one embedded Pebble database in the data
// directory: rooms, their listing indexes, and the idempotency records of the
// HTTP API (later also sessions, members, the webhook outbox and recordings).
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
