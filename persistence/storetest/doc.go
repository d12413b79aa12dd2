// Package storetest is the conformance suite of persistence.Backend: Run
// checks a backend against the contracts that persistence.Backend and the
// types it takes document, through the interface alone, so that every store
// of record (Pebble on one node, etcd in a cluster) is held to the same
// behaviour by the same tests.
//
// A backend's own tests call Run with a function that opens the backend
// over a directory (or a namespace named after it); the suite closes and
// reopens backends to check what survives. The suite knows nothing of any
// backend's implementation: it never opens a persistence.Store itself.
// Tests of what only one backend has (key layouts, encodings, fsync counts,
// corrupt values) stay with that backend.
//
// Only tests import storetest.
package storetest
