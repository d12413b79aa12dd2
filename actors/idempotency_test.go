package actors

import (
	"context"
	"errors"
	"testing"

	"github.com/troupe-media/troupe/persistence"
)

// A key never seen is "not found", not an error; a store that fails is an
// error, never taken for a key never seen (which would run a retry twice).
func TestIdempotencyFoundAndErrors(t *testing.T) {
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	idem := NewIdempotency(store)
	ctx := context.Background()

	if r, found, err := idem.Response(ctx, "api-key", "k1"); err != nil || found || r != nil {
		t.Fatalf("unknown key: %v, %v, %v", r, found, err)
	}
	want := IdempotentResponse{Fingerprint: "fp", Status: 201, ContentType: "application/json", Body: []byte(`{"id":"r"}`)}
	if err := idem.Keep(ctx, "api-key", "k1", want); err != nil {
		t.Fatal(err)
	}
	r, found, err := idem.Response(ctx, "api-key", "k1")
	if err != nil || !found || r.Fingerprint != want.Fingerprint || r.Status != want.Status || string(r.Body) != string(want.Body) {
		t.Fatalf("kept response: %+v, %v, %v", r, found, err)
	}
	if _, found, err := idem.Response(ctx, "other-key", "k1"); err != nil || found {
		t.Fatalf("another scope's key: %v, %v", found, err)
	}

	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, found, err := idem.Response(ctx, "api-key", "k2"); !errors.Is(err, persistence.ErrClosed) || found {
		t.Fatalf("closed store: found %v, err %v", found, err)
	}
	if err := idem.Keep(ctx, "api-key", "k2", want); !errors.Is(err, persistence.ErrClosed) {
		t.Fatalf("keep in a closed store: %v", err)
	}
}
