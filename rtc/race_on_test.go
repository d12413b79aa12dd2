//go:build race

package rtc

// raceEnabled: the race detector slows every goroutine several times,
// and GCC reads the delay that adds on loopback as congestion.
const raceEnabled = true
