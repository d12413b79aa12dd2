//go:build !race

package mediaload_test

const raceEnabled = false
