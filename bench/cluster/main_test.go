package cluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// buildDir holds the troupe executable the tests build once.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "troupe-rig-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	builtExe  string
	buildErr  error
)

// troupeExe builds the troupe executable on first use.
func troupeExe(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		builtExe, buildErr = BuildTroupe(ctx, buildDir)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return builtExe
}

// startCluster starts a cluster of cfg for the test, building troupe on
// first use; it skips the test, or fails it, when etcd is missing.
func startCluster(tb testing.TB, cfg Config) *Cluster {
	tb.Helper()
	RequireEtcd(tb)
	cfg.Exe = troupeExe(tb)
	return Start(tb, cfg)
}
