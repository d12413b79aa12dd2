package etcdstore_test

import (
	"testing"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/storetest"
)

// TestConformance holds the etcd store to the contracts of
// persistence.Backend. Every backend the suite opens shares one etcd: the
// directory it names is the backend's key prefix, so reopening a directory
// reopens its records and a new directory starts empty.
func TestConformance(t *testing.T) {
	endpoint := startEtcd(t)
	storetest.Run(t, func(t *testing.T, dir string) persistence.Backend {
		s, err := etcdstore.New(t.Context(), etcdstore.Config{
			Endpoints:      []string{endpoint},
			Prefix:         dir + "/",
			Logger:         quiet(),
			IdempotencyTTL: storetest.IdempotencyTTL,
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	})
}
