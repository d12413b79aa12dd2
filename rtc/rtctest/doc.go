// Package rtctest holds what Troupe's tests and benchmarks use to play the
// client side of media: a pion API whose ICE stays on loopback, a sender
// of synthetic RTP at real sizes and rates, and a receiver that checks
// what arrives (order, integrity, latency).
//
// Synthetic payloads carry a packet counter and the send time, then a
// filler that depends on the counter, so a receiver can tell loss,
// reordering, corruption and end-to-end latency from the packets alone.
// Video payloads are VP8 with a real payload descriptor, so the server's
// keyframe detection sees the keyframes the sender marks. A
// SimulcastSender plays a browser's simulcast camera, three rid layers of
// VP8 or of H.264 (parameter sets, IDR and slices, packetized by pion),
// whose sizes the server reads from the keyframes.
//
// ClientAPIWithArrivals wraps the clients' UDP sockets to record when each
// RTP datagram arrived (the kernel's timestamp on Linux), keyed by SSRC
// and sequence number from the clear RTP header, so that a Receiver can
// also tell the latency up to its socket, apart from its own client's
// decryption and queues.
package rtctest
