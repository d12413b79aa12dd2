package etcdstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
)

// TestOutlivesNewContext: the context of New bounds the connection, not the
// Store's life.
func TestOutlivesNewContext(t *testing.T) {
	endpoint := startEtcd(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := etcdstore.New(ctx, etcdstore.Config{Endpoints: []string{endpoint}, Prefix: "p/", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cancel()
	if err := s.PutRoom(context.Background(), room("r1", "x")); err != nil {
		t.Fatalf("PutRoom after New's context ended: %v", err)
	}
}

func TestConfigChecked(t *testing.T) {
	for name, cfg := range map[string]etcdstore.Config{
		"no etcd":        {},
		"negative TTL":   {Endpoints: []string{"http://127.0.0.1:1"}, IdempotencyTTL: -1},
		"negative lease": {Endpoints: []string{"http://127.0.0.1:1"}, LeaseTTL: -1},
	} {
		if _, err := etcdstore.New(context.Background(), cfg); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("New with %s = %v, want ErrInvalid", name, err)
		}
	}
}

// TestPrefixesApart: Stores on different prefixes of one etcd share nothing.
func TestPrefixesApart(t *testing.T) {
	ctx := context.Background()
	endpoint := startEtcd(t)
	a, b := open(t, endpoint, "a/", nil), open(t, endpoint, "b/", nil)
	if err := a.PutRoom(ctx, room("r1", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetRoom(ctx, "r1"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("b.GetRoom = %v, want ErrNotFound", err)
	}
	if p, err := b.ListRooms(ctx, persistence.RoomQuery{}); err != nil || p.Total != 0 {
		t.Fatalf("b.ListRooms = %+v, %v; want none", p, err)
	}
}
