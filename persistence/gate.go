package persistence

import (
	"context"
	"sync"
)

// Gate lets a backend's operations run until it closes, and its Close wait
// for the operations in flight. Every operation holds a read lock from
// Enter to Leave; read locks do not exclude each other, so operations still
// run concurrently. The zero Gate is open.
type Gate struct {
	mu     sync.RWMutex
	closed bool // guarded by mu
}

// Enter starts an operation: it returns the context's error, or ErrClosed
// once Shut has begun. On success the caller must call Leave.
func (g *Gate) Enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Leave ends an operation Enter started.
func (g *Gate) Leave() { g.mu.RUnlock() }

// Shut waits for the operations in flight, closes the gate, and runs
// release (if not nil) before any later Enter can return: a backend whose
// resources must not be used after they are released (Pebble panics) frees
// them there.
func (g *Gate) Shut(release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if release != nil {
		release()
	}
}
