//go:build race

package httpapi

// raceEnabled: the race detector slows every goroutine several times,
// and the delay-based bandwidth estimate reads the delay that adds on
// loopback as congestion.
const raceEnabled = true
