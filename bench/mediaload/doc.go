// Package mediaload is the media benchmark behind `troupe bench media`: it
// runs a scenario (bench/scenarios) of real pion clients (bench/client)
// against a server over loopback, sends synthetic RTP at real sizes and
// rates (rtc/rtctest), and measures, step by step, what a media engineer
// compares SFUs by: packets delivered and lost, end-to-end latency, the
// time from joining to the first packet, and the server's CPU per
// forwarded packet and memory per participant, read from /proc of the
// server process. It also writes the report as a table, JSON and an SVG
// chart.
package mediaload
