package persistence_test

import (
	"io"
	"log/slog"
	"testing"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/storetest"
)

// TestConformance holds the Pebble store to the contracts of Backend.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) persistence.Backend {
		s, err := persistence.Open(persistence.Config{
			Dir:            dir,
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
			IdempotencyTTL: storetest.IdempotencyTTL,
		})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	})
}
