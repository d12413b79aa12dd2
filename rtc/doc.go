// Package rtc is Troupe's media data plane: the one pion API the server uses
// for every peer connection (codecs, interceptors, the ICE UDP mux), and the
// forwarding fast path that carries a publisher's RTP to its subscribers.
//
// An Engine makes peer connections. A Forwarder owns the read loop of one
// published track and writes each packet straight to the DownTracks that
// subscribe to it; a DownTrack is the pion TrackLocal added to a subscriber's
// peer connection, with its own bounded queue and writer goroutine so that a
// slow subscriber never holds up the publisher or the others. Subscriber
// sets are immutable slices swapped atomically, so the per-packet path takes
// no lock, sends no message and allocates nothing.
//
// The package knows nothing of actors or HTTP: the participant actors drive
// it through the exported methods and learn of failures through callbacks.
package rtc
