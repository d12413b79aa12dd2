// Package naive is the benchmark's baseline: a minimal forwarder written
// the way pion's examples are. Every client gets one pion PeerConnection
// with pion's default codecs and interceptors; a published track's
// goroutine reads each RTP packet and writes it to every subscriber's
// TrackLocalStaticRTP in one loop, under a lock. It speaks just the part
// of Troupe's signaling that bench/client uses (rooms and tokens over
// REST, then join, offer, answer and candidate over the WebSocket), so the
// same clients measure it and Troupe side by side. It has no auth, no
// persistence and no limits: never expose it.
package naive
