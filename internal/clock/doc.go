// Package clock is where Troupe reads the time and schedules its timers:
// one Clock interface, System (the real time) and Manual (a clock that
// moves only when a test advances it), so that session timers, webhook
// backoffs, token and idempotency expiry and keyframe throttles are tested
// by moving time instead of sleeping through it.
//
// It sits outside the layers (cmd -> httpapi -> actors -> {rtc, persistence}, README) because every layer takes it:
// rtc and persistence may not import each other nor anything above them,
// and internal keeps it out of reach of other modules. It is a leaf: it
// imports only the standard library, and nothing of Troupe.
//
// Durations that bound real I/O (request and dial timeouts, socket
// deadlines, ICE gathering) and measurements of real work (metrics,
// latencies) stay on the time package: a test's clock must not cut a
// network exchange short, nor make it look free.
package clock
