package persistence

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

func TestIdempotentTTL(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Config{Dir: t.TempDir(), Logger: quietLogger(), IdempotencyTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	records := map[string]time.Duration{"fresh": 0, "59m": 59 * time.Minute, "61m": 61 * time.Minute, "2d": 48 * time.Hour}
	for key, age := range records {
		if err := s.PutIdempotent(ctx, "s", key, IdempotentResponse{Status: 201, CreatedAt: now.Add(-age)}); err != nil {
			t.Fatal(err)
		}
	}
	for key, age := range records {
		_, err := s.GetIdempotent(ctx, "s", key)
		if expired := age > time.Hour; expired != errors.Is(err, ErrNotFound) {
			t.Errorf("GetIdempotent(%s) = %v; expired %v", key, err, expired)
		}
	}

	// The pruner that Open started may have run already; either way the
	// expired records must be gone and the others kept.
	if _, err := s.pruneIdempotent(ctx, time.Now()); err != nil {
		t.Fatalf("pruneIdempotent: %v", err)
	}
	for key, age := range records {
		if expired := age > time.Hour; expired == hasIdempotent(t, s, key) {
			t.Errorf("after prune, record %s stored %v; expired %v", key, !expired, expired)
		}
	}
}

// hasIdempotent reports whether s holds the idempotency record key of
// scope "s", whether or not it has expired.
func hasIdempotent(t testing.TB, s *Store, key string) bool {
	t.Helper()
	_, closer, err := s.db.Get(idempotencyKey("s", key))
	if errors.Is(err, pebble.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	closer.Close()
	return true
}

func TestPruneIdempotentCount(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	now := time.Now()
	for _, key := range []string{"a", "b", "c"} {
		if err := s.PutIdempotent(ctx, "s", key, IdempotentResponse{Status: 201, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.pruneIdempotent(ctx, now.Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("prune within TTL = %d, %v; want 0", n, err)
	}
	if n, err := s.pruneIdempotent(ctx, now.Add(25*time.Hour)); err != nil || n != 3 {
		t.Fatalf("prune after TTL = %d, %v; want 3", n, err)
	}
	if n, err := s.pruneIdempotent(ctx, now.Add(25*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v; want 0", n, err)
	}
}

// TestIdempotentPrunedAtOpen checks that the background pruner runs when the
// store opens, without waiting for its first tick.
func TestIdempotentPrunedAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	old := IdempotentResponse{Status: 201, CreatedAt: time.Now().Add(-25 * time.Hour)}
	if err := s.PutIdempotent(ctx, "s", "old", old); err != nil {
		t.Fatal(err)
	}
	if err := s.PutIdempotent(ctx, "s", "new", IdempotentResponse{Status: 201}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir)
	poll.Until(t, "the expired record pruned after Open", func() bool { return !hasIdempotent(t, s, "old") })
	if _, err := s.GetIdempotent(ctx, "s", "new"); err != nil {
		t.Fatalf("fresh record: %v", err)
	}
}

// TestIdempotentPrunedOnClock: the pruner runs every pruneInterval of the
// store's clock and deletes what has expired by then, and nothing younger.
func TestIdempotentPrunedOnClock(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s, err := Open(Config{Dir: t.TempDir(), Logger: quietLogger(), IdempotencyTTL: time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutIdempotent(ctx, "s", "old", IdempotentResponse{Status: 201}); err != nil {
		t.Fatal(err)
	}
	stored := func(key string) bool { return hasIdempotent(t, s, key) }
	// prune lets the pruner's timer run and waits for the prune it starts:
	// the loop arms its next timer only once that prune is done.
	prune := func(d time.Duration) {
		t.Helper()
		clk.Advance(d)
		poll.Until(t, "the pruner to arm its next timer", func() bool { return clk.Pending() == 1 })
	}
	prune(0) // the prune at Open
	if n := clk.Pending(); n != 1 {
		t.Fatalf("%d timers armed after Open, want the pruner's one", n)
	}
	prune(30 * time.Second) // not due
	prune(30 * time.Second) // due; "old" is exactly the TTL old, not past it
	if !stored("old") {
		t.Fatal("a record pruned at its TTL, not past it")
	}
	if err := s.PutIdempotent(ctx, "s", "new", IdempotentResponse{Status: 201}); err != nil {
		t.Fatal(err)
	}
	prune(time.Minute)
	if stored("old") || !stored("new") {
		t.Fatalf("after a prune past one TTL: old stored %v, new stored %v; want only new", stored("old"), stored("new"))
	}
}

func TestCorruptIdempotentValue(t *testing.T) {
	ctx := context.Background()
	good := encodeIdempotent(IdempotentResponse{Status: 201, Body: []byte("{}"), CreatedAt: time.Now()})
	tests := []struct {
		name  string
		value []byte
		want  error
	}{
		{"empty", nil, ErrCorrupt},
		{"unknown schema", append([]byte{9}, good[1:]...), ErrUnknownSchema},
		{"truncated time", good[:5], ErrCorrupt},
		{"truncated body", good[:len(good)-1], ErrCorrupt},
		{"trailing bytes", append(append([]byte(nil), good...), 0), ErrCorrupt},
	}
	s := openStore(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.db.Set(idempotencyKey("s", tt.name), tt.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			_, err := s.GetIdempotent(ctx, "s", tt.name)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Kind != KindIdempotency || !errors.Is(err, tt.want) {
				t.Fatalf("GetIdempotent = %v, want CorruptError of kind idempotency matching %v", err, tt.want)
			}
		})
	}
	// Pruning skips unreadable records rather than failing.
	if _, err := s.pruneIdempotent(ctx, time.Now().Add(48*time.Hour)); err != nil {
		t.Fatalf("pruneIdempotent over corrupt records: %v", err)
	}
}
