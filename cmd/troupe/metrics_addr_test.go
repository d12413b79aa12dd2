package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"testing"
)

// --metrics-addr is checked on the address its listener bound, so a host
// name is checked on the address it resolved to: a public one or a
// wildcard is refused unless --metrics-allow-public; loopback, private
// and shared ones serve.
func TestMetricsAddrBoundCheck(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow bool
		ok    bool
	}{
		{"127.0.0.1", false, true},
		{"::1", false, true},
		{"10.1.2.3", false, true},
		{"100.101.102.103", false, true},
		{"fd00::5", false, true},
		{"fe80::1%eth0", false, true},
		{"203.0.113.7", false, false},
		{"2606:4700:4700::1111", false, false},
		{"::ffff:203.0.113.7", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"203.0.113.7", true, true},
		{"::", true, true},
	} {
		cfg := Config{MetricsAddr: "metrics.example:9090", MetricsAllowPublic: tc.allow}
		err := cfg.metricsBindCheck(netip.MustParseAddr(tc.addr))
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("bound to %s, --metrics-allow-public %v: %v", tc.addr, tc.allow, err)
		}
	}

	log := slog.New(slog.DiscardHandler)
	// A name: checked on what it resolved to, loopback here.
	cfg := Config{MetricsAddr: "localhost:0"}
	stop, err := startSideServer(cfg.MetricsAddr, "metrics", "/metrics", http.NotFoundHandler(), log, cfg.metricsBindCheck)
	if err != nil {
		t.Fatalf("localhost: %v", err)
	}
	if err := stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Every interface, past Validate: refused once bound.
	cfg = Config{MetricsAddr: ":0"}
	if _, err := startSideServer(cfg.MetricsAddr, "metrics", "/metrics", http.NotFoundHandler(), log, cfg.metricsBindCheck); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("every interface: %v, want refused", err)
	}
	// A refused listener is closed before it serves anything.
	addr := freeAddr(t)
	refuse := errors.New("refused")
	if _, err := startSideServer(addr, "metrics", "/metrics", http.NotFoundHandler(), log, func(netip.Addr) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refused bind: %v", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a refused listener still accepts connections")
	}
}
