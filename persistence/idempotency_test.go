package persistence

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func TestIdempotentRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	if _, err := s.GetIdempotent(ctx, "key1", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetIdempotent before put = %v, want ErrNotFound", err)
	}
	want := IdempotentResponse{
		Fingerprint: "sha256:4f2a",
		Status:      201,
		ContentType: "application/json",
		Body:        []byte(`{"id":"room_abc"}`),
		CreatedAt:   time.Now().UTC().Add(-time.Minute).Round(0),
	}
	if err := s.PutIdempotent(ctx, "key1", "k", want); err != nil {
		t.Fatalf("PutIdempotent: %v", err)
	}
	got, err := s.GetIdempotent(ctx, "key1", "k")
	if err != nil {
		t.Fatalf("GetIdempotent: %v", err)
	}
	if got.Fingerprint != want.Fingerprint || got.Status != want.Status || got.ContentType != want.ContentType ||
		string(got.Body) != string(want.Body) || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("GetIdempotent = %+v, want %+v", got, want)
	}

	// Zero CreatedAt means now.
	before := time.Now()
	if err := s.PutIdempotent(ctx, "key1", "now", IdempotentResponse{Status: 204}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetIdempotent(ctx, "key1", "now")
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Before(before.Add(-time.Millisecond)) || got.CreatedAt.After(time.Now()) {
		t.Fatalf("CreatedAt = %v, want about %v", got.CreatedAt, before)
	}
}

func TestIdempotentScopes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	// Pairs whose naive "<scope>/<key>" joins would collide.
	puts := []struct{ scope, key string }{
		{"a/b", "c"},
		{"a", "b/c"},
		{"a%2Fb", "c"},
		{"", "a/b/c"},
	}
	for i, p := range puts {
		if err := s.PutIdempotent(ctx, p.scope, p.key, IdempotentResponse{Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range puts {
		got, err := s.GetIdempotent(ctx, p.scope, p.key)
		if err != nil {
			t.Fatalf("GetIdempotent(%q, %q): %v", p.scope, p.key, err)
		}
		if got.Status != 200+i {
			t.Errorf("GetIdempotent(%q, %q).Status = %d, want %d", p.scope, p.key, got.Status, 200+i)
		}
	}
	if err := s.PutIdempotent(ctx, "a", "", IdempotentResponse{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("PutIdempotent with empty key = %v, want ErrInvalid", err)
	}
}

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
		_, closer, err := s.db.Get(idempotencyKey("s", key))
		if err == nil {
			closer.Close()
		}
		if expired := age > time.Hour; expired != errors.Is(err, pebble.ErrNotFound) {
			t.Errorf("after prune, raw get of %s = %v; expired %v", key, err, expired)
		}
	}
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, closer, err := s.db.Get(idempotencyKey("s", "old"))
		if errors.Is(err, pebble.ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		closer.Close()
		if time.Now().After(deadline) {
			t.Fatal("expired record still stored 10s after Open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.GetIdempotent(ctx, "s", "new"); err != nil {
		t.Fatalf("fresh record: %v", err)
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
