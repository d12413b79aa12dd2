//go:build !race

package rtctest

const raceEnabled = false
