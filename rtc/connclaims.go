package rtc

import "sync"

// connClaims keeps what an interceptor factory made for each peer
// connection, by the connection's id, until the Engine claims it for the
// connection: pion builds a connection's interceptors inside
// NewPeerConnection and hands back none of them.
type connClaims[T any] struct {
	mu   sync.Mutex // guards made
	made map[string]T
}

// put keeps v for the connection id.
func (c *connClaims[T]) put(id string, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.made == nil {
		c.made = make(map[string]T)
	}
	c.made[id] = v
}

// claim returns and forgets what was made for the connection id; the
// zero T if nothing was.
func (c *connClaims[T]) claim(id string) T {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.made[id]
	delete(c.made, id)
	return v
}
