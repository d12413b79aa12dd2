// Package actorstest starts Troupe's control plane for the tests of the
// packages built on it (the HTTP API, the benchmarks): real room actors
// over a real Pebble store in the test's temporary directory, with a media
// engine on loopback UDP when the test needs participants. What it starts
// stops when the test ends.
//
// Only tests import it. The actors package's own tests cannot (it imports
// actors); they build their rooms themselves.
package actorstest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/rtc"
)

// RequestTimeout is how long the started rooms wait for a room actor's
// reply: long enough for a loaded machine under the race detector. Keep
// it well under the bounds of the tests' shutdowns: a request that
// reaches a participant as it stops is dropped (protoactor-go drops what
// an actor's mailbox holds when it stops), and its handler waits this
// long before a server's Close can return. A test that floods the rooms
// sets a longer one.
const RequestTimeout = 5 * time.Second

// closeTimeout bounds the rooms' Close when the test ends.
const closeTimeout = 30 * time.Second

// Stack is a running control plane.
type Stack struct {
	Store   *persistence.Store
	Rooms   *actors.Rooms
	Engine  *rtc.Engine  // nil without media
	Metrics *rtc.Metrics // the media engine's; nil without media
}

// Start opens a store in a new temporary directory and starts room actors
// over it; with media, they get a media engine on loopback UDP and take
// participants. mod, if not nil, changes the actors' configuration before
// they start. Start fails t if anything does not start, and registers a
// cleanup that stops the rooms, then the engine, then the store: register
// what is built on the stack after Start, so that it stops first.
func Start(t testing.TB, media bool, mod func(*actors.Config)) *Stack {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s := &Stack{Store: store}
	cfg := actors.Config{Store: store, RequestTimeout: RequestTimeout, Logger: quiet}
	if media {
		if s.Engine, err = rtc.NewEngine(rtc.Config{LoopbackOnly: true, Logger: quiet}); err != nil {
			store.Close()
			t.Fatal(err)
		}
		s.Metrics = rtc.NewMetrics()
		cfg.Media, cfg.MediaMetrics = s.Engine, s.Metrics
	}
	if mod != nil {
		mod(&cfg)
	}
	if s.Rooms, err = actors.NewRooms(cfg); err != nil {
		s.closeMedia(t)
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.Rooms.Close(ctx); err != nil {
			t.Errorf("close rooms: %v", err)
		}
		s.closeMedia(t)
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func (s *Stack) closeMedia(t testing.TB) {
	if s.Engine == nil {
		return
	}
	if err := s.Engine.Close(); err != nil {
		t.Errorf("close engine: %v", err)
	}
}
