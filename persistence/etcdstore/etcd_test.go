package etcdstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/troupe-media/troupe/persistence/etcdstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startTimeout bounds how long an embedded etcd may take to elect itself
// leader: a broken setup fails the test instead of hanging it.
const startTimeout = time.Minute

// startEtcd starts a single-member etcd on loopback, with ports the system
// picks, its data in a temporary directory, and returns its client URL. It
// is stopped when the test ends.
func startEtcd(tb testing.TB) string {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = tb.TempDir()
	cfg.Name = "troupe-test"
	cfg.LogLevel = "error"
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{local}, []url.URL{local}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{local}, []url.URL{local}
	cfg.InitialCluster = cfg.Name + "=" + local.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	tb.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		tb.Fatalf("etcd: %v", err)
	case <-time.After(startTimeout):
		tb.Fatalf("etcd not ready after %v", startTimeout)
	}
	return "http://" + e.Clients[0].Addr().String()
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
