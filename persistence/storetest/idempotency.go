package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/troupe-media/troupe/persistence"
)

var idempotencyCases = []testCase{
	{"RoundTrip", testIdempotentRoundTrip},
	{"Scopes", testIdempotentScopes},
	{"Invalid", testIdempotentInvalid},
	{"Expiry", testIdempotentExpiry},
}

func getIdempotent(t *testing.T, b persistence.Backend, scope, key string) *persistence.IdempotentResponse {
	t.Helper()
	r, err := b.GetIdempotent(context.Background(), scope, key)
	if err != nil {
		t.Fatalf("GetIdempotent(%q, %q): %v", scope, key, err)
	}
	return r
}

func putIdempotent(t *testing.T, b persistence.Backend, scope, key string, r persistence.IdempotentResponse) {
	t.Helper()
	if err := b.PutIdempotent(context.Background(), scope, key, r); err != nil {
		t.Fatalf("PutIdempotent(%q, %q): %v", scope, key, err)
	}
}

func sameResponse(got *persistence.IdempotentResponse, want persistence.IdempotentResponse) bool {
	return got.Fingerprint == want.Fingerprint && got.Status == want.Status && got.ContentType == want.ContentType &&
		string(got.Body) == string(want.Body) && slices.Equal(got.Headers, want.Headers) && got.CreatedAt.Equal(want.CreatedAt)
}

func testIdempotentRoundTrip(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	_, err := b.GetIdempotent(ctx, "key_1", "k")
	wantErr(t, "GetIdempotent of an empty store", err, persistence.ErrNotFound)

	want := persistence.IdempotentResponse{
		Fingerprint: "sha256:9c1e",
		Status:      201,
		ContentType: "application/json",
		Body:        []byte(`{"id":"room_1"}`),
		Headers:     []persistence.Header{{Name: "Location", Value: "/api/v1/rooms/room_1"}, {Name: "Link", Value: "<stun:a>"}, {Name: "Link", Value: "<stun:b>"}},
		CreatedAt:   time.Now().Add(-time.Minute).Truncate(time.Microsecond).Add(123), // nanoseconds kept
	}
	putIdempotent(t, b, "key_1", "k", want)
	got := getIdempotent(t, b, "key_1", "k")
	if !sameResponse(got, want) {
		t.Fatalf("GetIdempotent = %+v, want %+v", got, want)
	}
	got.Body[0] = 'X' // the caller's to change
	if again := getIdempotent(t, b, "key_1", "k"); !sameResponse(again, want) {
		t.Fatalf("GetIdempotent again = %+v, want %+v", again, want)
	}

	replaced := persistence.IdempotentResponse{Fingerprint: "sha256:77aa", Status: 409, CreatedAt: want.CreatedAt.Add(time.Second)}
	putIdempotent(t, b, "key_1", "k", replaced)
	if got := getIdempotent(t, b, "key_1", "k"); !sameResponse(got, replaced) {
		t.Fatalf("GetIdempotent after replace = %+v, want %+v", got, replaced)
	}

	// A zero CreatedAt is the time of the put. The wall clock is all the
	// suite shares with the backend: a second either side allows for its
	// steps, not for slowness.
	before := time.Now()
	putIdempotent(t, b, "key_1", "now", persistence.IdempotentResponse{Status: 204})
	after := time.Now()
	if got := getIdempotent(t, b, "key_1", "now").CreatedAt; got.Before(before.Add(-time.Second)) || got.After(after.Add(time.Second)) {
		t.Fatalf("CreatedAt = %v, want between %v and %v", got, before, after)
	}
}

func testIdempotentScopes(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	// Pairs that a naive join of scope and key would mix up.
	pairs := []struct{ scope, key string }{
		{"a/b", "c"}, {"a", "b/c"}, {"a%2Fb", "c"}, {"", "a/b/c"}, {"a", "b"}, {"b", "a"}, {"a", "bc"}, {"ab", "c"},
	}
	for i, p := range pairs {
		putIdempotent(t, b, p.scope, p.key, persistence.IdempotentResponse{Status: 200 + i})
	}
	for i, p := range pairs {
		if got := getIdempotent(t, b, p.scope, p.key); got.Status != 200+i {
			t.Errorf("GetIdempotent(%q, %q).Status = %d, want %d", p.scope, p.key, got.Status, 200+i)
		}
	}
	_, err := b.GetIdempotent(context.Background(), "c", "a/b")
	wantErr(t, "GetIdempotent of a pair never put", err, persistence.ErrNotFound)
}

func testIdempotentInvalid(t *testing.T, h *harness) {
	ctx := context.Background()
	b, _ := h.fresh(t)
	tests := []struct {
		name string
		key  string
		r    persistence.IdempotentResponse
	}{
		{"empty key", "", persistence.IdempotentResponse{Status: 200}},
		{"negative status", "k", persistence.IdempotentResponse{Status: -1}},
		{"created after 2262", "k", persistence.IdempotentResponse{Status: 200, CreatedAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"created before 1678", "k", persistence.IdempotentResponse{Status: 200, CreatedAt: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"header without a name", "k", persistence.IdempotentResponse{Status: 201, Headers: []persistence.Header{{Value: "/x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, "PutIdempotent", b.PutIdempotent(ctx, "s", tt.key, tt.r), persistence.ErrInvalid)
			_, err := b.GetIdempotent(ctx, "s", tt.key)
			wantErr(t, "GetIdempotent after the refused put", err, persistence.ErrNotFound)
		})
	}
}

// testIdempotentExpiry stores records a margin younger and older than
// IdempotencyTTL; the margin is far beyond how long the test runs.
func testIdempotentExpiry(t *testing.T, h *harness) {
	ctx := context.Background()
	b, dir := h.fresh(t)
	const margin = 10 * time.Minute
	now := time.Now()
	ages := []struct {
		age     time.Duration
		expired bool
	}{
		{0, false},
		{IdempotencyTTL - margin, false},
		{IdempotencyTTL + margin, true},
		{30 * IdempotencyTTL, true},
		{-margin, false}, // made by a clock a little ahead
	}
	key := func(age time.Duration) string { return fmt.Sprintf("age %v", age) }
	for _, a := range ages {
		putIdempotent(t, b, "s", key(a.age), persistence.IdempotentResponse{Status: 201, CreatedAt: now.Add(-a.age)})
	}
	check := func(b persistence.Backend) {
		t.Helper()
		for _, a := range ages {
			_, err := b.GetIdempotent(ctx, "s", key(a.age))
			if a.expired {
				wantErr(t, "GetIdempotent of a record aged "+a.age.String(), err, persistence.ErrNotFound)
			} else if err != nil {
				t.Fatalf("GetIdempotent of a record aged %v: %v", a.age, err)
			}
		}
	}
	check(b)
	b = h.cycle(t, b, dir)
	check(b)
	// An expired record is replaced like any other.
	old := key(IdempotencyTTL + margin)
	putIdempotent(t, b, "s", old, persistence.IdempotentResponse{Status: 202})
	if got := getIdempotent(t, b, "s", old); got.Status != 202 {
		t.Fatalf("replaced expired record: status %d, want 202", got.Status)
	}
}
