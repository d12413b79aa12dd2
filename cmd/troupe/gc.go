package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// defaultGCPercent is the server's garbage collection target when neither
// --gc-percent nor GOGC says otherwise. Go's own default, 100, lets the heap
// grow to twice what is live before collecting. Forwarding media allocates
// nothing, so a server that is only forwarding never reaches that goal: the
// garbage of the last joins (SDP, DTLS handshakes, signaling) stays
// resident, as much again as the live heap. A tighter goal collects it
// while the joins happen and keeps the server's memory close to what its
// connections hold; it costs collections during joins only.
const defaultGCPercent = 25

// gcPercentOff is the --gc-percent value that turns the collector off but
// for a memory limit (GOMEMLIMIT), as GOGC=off does.
const gcPercentOff = -1

// applyGCPercent sets the collector's target from --gc-percent and returns
// a function that restores the previous one. Zero means the default: GOGC
// if the environment sets it (the runtime already applied it), else
// defaultGCPercent.
func applyGCPercent(percent int, log *slog.Logger) (restore func()) {
	if percent == 0 {
		if v, ok := os.LookupEnv("GOGC"); ok {
			log.Debug("garbage collection target from the environment", "GOGC", v)
			return func() {}
		}
		percent = defaultGCPercent
	}
	prev := debug.SetGCPercent(percent)
	return func() { debug.SetGCPercent(prev) }
}
