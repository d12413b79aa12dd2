// Package mediaload is the media benchmark behind `troupe bench media`: it
// runs a scenario (bench/scenarios) of real pion clients (bench/client)
// against a server over loopback, sends synthetic RTP at real sizes and
// rates (rtc/rtctest), and measures, step by step, what a media engineer
// compares SFUs by: packets delivered and lost, end-to-end latency, the
// time from joining to the first packet, and the server's CPU per
// forwarded packet and memory per participant, read from /proc of the
// server process (bench/proc). It also writes the report as a table, JSON and an SVG
// chart.
//
// Latency is measured twice from the send time the publisher writes into
// each payload. End-to-end ends when the subscriber's track reader gets
// the packet, after that client's decryption and pion's queues; with all
// clients in one process, at a hundred subscribers and more that is
// mostly the clients' own load. Path latency ends when the datagram
// reached the subscriber's UDP socket, by the kernel's receive timestamp
// (Linux; the socket read's time elsewhere): the server's part plus two
// loopback hops and the publisher client's send. The ramp's limits use
// end-to-end latency.
//
// The simulcast scenario's publishers send a camera in rid layers
// (bench/client.SimulcastCamera) and its subscribers come in classes
// (scenarios.Class): each asks for its class's size, reads its packets
// through a token bucket at its class's rate (rtctest's Shaper), cut and
// given back at set times in each window. A subscriber tells each
// packet's layer from the camera's payload, which the server forwards
// untouched, and judges each switch by the packet that starts it: the
// first of a keyframe of the new layer, unless a packet was lost just
// before it or it is the first of a new track (a reconnection's). A packet
// that comes after one numbered higher (a retransmission) is counted but
// starts no switch. Step.Classes sums each class up.
//
// Each client is a bench/client Session unless Config.NoReconnect: one
// whose connection is lost (a node of a cluster died) joins again by
// itself, republishing its tracks, and the steps count the reconnections
// and the time without media. A publisher keeps the participant id of its
// first connection as its name in the figures.
package mediaload
