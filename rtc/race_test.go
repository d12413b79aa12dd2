//go:build race

package rtc

// raceEnabled is set when the tests run under the race detector.
const raceEnabled = true
