// Package etcdtest runs an etcd inside a test binary, and a link to it that
// a test can cut, for the tests of Troupe's etcd store and of the cluster
// mode built on it. Only tests import it.
package etcdtest

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long an embedded etcd may take to elect itself
// leader: a broken setup fails the test instead of hanging it.
const startTimeout = time.Minute

// Start starts a single-member etcd in the test binary, on loopback
// with ports the system picks and its data in a temporary directory, and
// returns its client URL and a function that stops it before the test ends
// (it stops at the end of the test in any case).
func Start(tb testing.TB) (endpoint string, stop func()) {
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
