//go:build race

package rtc

// raceEnabled: the race detector slows every goroutine several times,
// and the delay-based estimate reads the delay that adds on loopback as congestion.
const raceEnabled = true
