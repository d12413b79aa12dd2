// Package packetcache keeps the most recent RTP packets of one track so that
// retransmission requests (NACKs) can be answered without asking the publisher.
//
// A Cache is a fixed ring of preallocated slots indexed by sequence number: a
// Store copies the packet into the slot for its sequence number and never
// allocates. One goroutine stores (the track's read loop) while any number of
// goroutines look packets up (the subscribers' RTCP handlers).
//
// It is a leaf package: it imports only the standard library.
package packetcache
