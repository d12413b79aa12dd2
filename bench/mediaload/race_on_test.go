//go:build race

package mediaload_test

// raceEnabled: the race detector slows the clients and the server
// several times, and the server's bandwidth estimate reads the delay
// that adds on loopback as congestion.
const raceEnabled = true
