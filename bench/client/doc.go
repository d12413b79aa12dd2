// Package client is a Troupe signaling client on a pion peer connection:
// it joins a room over the WebSocket signaling of docs/signaling.md,
// publishes tracks with its own offers, answers the server's offers as the
// impolite peer, trickles ICE candidates both ways and asks for keyframes
// while an offered video track has not started, as browsers do. The
// media benchmark runs hundreds of them; anything that needs a scripted
// participant can use it.
//
// A SimulcastCamera is a synthetic VP8 camera in rid layers, published in
// one section as a browser's simulcast is, with each layer's size in its
// keyframes and a keyframe on a PLI to a layer; ReadCameraPacket reads
// back, from a forwarded packet, which layer it came from. A Config's
// VideoSize asks for every video track at that size (track-settings).
//
// A Client is one connection. A Session is a participant that joins again
// by itself, with a new peer connection, when its socket ends or its peer
// connection fails (a cluster node died, or dropped its rooms), as
// docs/signaling.md tells clients to: jittered exponential backoff,
// Retry-After honoured, the next server URL tried, a bounded number of
// attempts; not after it left, was kicked or replaced, its room ended, or
// a join was refused for good. It counts its reconnections and the time
// without media.
package client
