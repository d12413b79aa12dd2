package httpapi

import (
	"net/http"
	"sync"
)

// Defaults of the caps on signaling sockets waiting for their join message.
const (
	defaultSignalingPending        = 1024
	defaultSignalingPendingPerAddr = 16
)

// pendingJoins counts the signaling sockets opened without a token whose
// join message has not come. Each holds a goroutine, a queue and a timer
// for up to joinMessageTimeout on nothing but a connection, so their
// number is capped in all and per client address; a socket over a cap is
// refused before the upgrade. A socket with a token joins before its
// upgrade and is not counted.
type pendingJoins struct {
	limit, perAddr int

	mu     sync.Mutex // guards the following
	total  int
	byAddr map[string]int
}

func newPendingJoins(limit, perAddr int) *pendingJoins {
	return &pendingJoins{limit: limit, perAddr: perAddr, byAddr: make(map[string]int)}
}

// acquire counts a socket from addr, or refuses it: 429 when addr has
// perAddr sockets waiting, 503 when the node has limit. The release it
// returns is called once the join message came or the socket ended; it
// may be called again.
func (p *pendingJoins) acquire(addr string) (release func(), err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.byAddr[addr] >= p.perAddr:
		return nil, rateLimited("too many signaling sockets from this address are waiting for their join message", joinMessageTimeout)
	case p.total >= p.limit:
		return nil, newAPIError(http.StatusServiceUnavailable, codeSignalingBusy, "too many signaling sockets are waiting for their join message; retry later")
	}
	p.total++
	p.byAddr[addr]++
	var once sync.Once
	return func() { once.Do(func() { p.release(addr) }) }, nil
}

func (p *pendingJoins) release(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total--
	if p.byAddr[addr]--; p.byAddr[addr] <= 0 {
		delete(p.byAddr, addr)
	}
}
