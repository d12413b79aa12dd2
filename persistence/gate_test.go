package persistence

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// Shut waits for the operation in flight before it releases, and every
// later Enter sees ErrClosed.
func TestGateShutWaitsForOperations(t *testing.T) {
	var g Gate
	if err := g.Enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	var left atomic.Bool
	released := make(chan bool)
	go g.Shut(func() { released <- left.Load() })
	left.Store(true)
	g.Leave()
	if !<-released {
		t.Fatal("released while an operation was in flight")
	}
	if err := g.Enter(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Enter after Shut: %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var open Gate
	if err := open.Enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enter with a cancelled context: %v", err)
	}
}
