package main

import (
	"strings"
	"testing"
)

// The first start's banner tells how the web page gets its join tokens:
// it suggests --dev-join-tokens only to a server started without it.
func TestBannerWebPageLine(t *testing.T) {
	for _, dev := range []bool{false, true} {
		cfg := testConfig(t.TempDir())
		cfg.DevJoinTokens = dev
		s := startServer(t, cfg)
		banner := s.out.String()
		if suggests := strings.Contains(banner, "or start with --dev-join-tokens"); suggests == dev ||
			strings.Contains(banner, "/dev/token") != dev {
			t.Errorf("banner with --dev-join-tokens=%v:\n%s", dev, banner)
		}
		if err := s.stop(); err != nil {
			t.Fatal(err)
		}
	}
}
