// Package poll is how Troupe's tests wait for something another goroutine
// does (a peer connects, a packet count grows, a webhook arrives): Until
// checks a condition over and over until it holds, and fails the test if
// it never does; Closed waits for a channel to be closed, with the same
// deadline.
//
// The deadline only bounds a failing test: a condition that comes true
// returns at once, so the deadline is generous, long enough for a test
// under the race detector on a loaded machine. A test never asserts that
// something happens within a time.
//
// It sits outside the layers (cmd -> httpapi -> actors -> {rtc, persistence}, README) because the tests of every layer
// take it (actors/webhook and persistence may import nothing above them,
// not even in tests). It imports only the standard library; only tests
// import it.
package poll
