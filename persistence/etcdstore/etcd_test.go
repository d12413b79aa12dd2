package etcdstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"

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
	endpoint, _ := startStoppableEtcd(tb)
	return endpoint
}

// startStoppableEtcd is startEtcd that also returns a function stopping the
// etcd before the test ends.
func startStoppableEtcd(tb testing.TB) (endpoint string, stop func()) {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = tb.TempDir()
	cfg.Name = "troupe-test"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	local := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{local}, []url.URL{local}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{local}, []url.URL{local}
	cfg.InitialCluster = cfg.Name + "=" + local.String()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("start etcd: %v", err)
	}
	stop = sync.OnceFunc(e.Close)
	tb.Cleanup(stop)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		tb.Fatalf("etcd: %v", err)
	case <-time.After(startTimeout):
		tb.Fatalf("etcd not ready after %v", startTimeout)
	}
	return "http://" + e.Clients[0].Addr().String(), stop
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
