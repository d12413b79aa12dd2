package etcdstore_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

// startEtcd starts an embedded etcd for the test (see EmbeddedEtcd) and
// returns its client URL.
func startEtcd(tb testing.TB) string {
	tb.Helper()
	endpoint, _ := etcdtest.Start(tb)
	return endpoint
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// open makes a Store on the etcd at endpoint, under prefix, closed when the
// test ends.
func open(tb testing.TB, endpoint, prefix string, mod func(*etcdstore.Config)) *etcdstore.Store {
	tb.Helper()
	cfg := etcdstore.Config{Endpoints: []string{endpoint}, Prefix: prefix, Logger: quiet()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := etcdstore.New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}
