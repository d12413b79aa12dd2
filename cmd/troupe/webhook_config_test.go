package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/syncbuf"
)

// A --webhook-urls endpoint the server may not reach (loopback, without
// --webhook-allow-private) stops it before it opens its store or its
// media ports, with an error that names the way to allow it.
func TestWebhookURLRefusedBeforeAnythingStarts(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.LogLevel = "info"
	cfg.WebhookURLs = stringList{"http://127.0.0.1:9/x"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, logs syncbuf.Buffer
	err = run(context.Background(), cfg, ln, &out, &logs)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "--webhook-urls http://127.0.0.1:9/x") ||
		!strings.Contains(err.Error(), "--webhook-allow-private") {
		t.Fatalf("run: %v", err)
	}
	if logs.String() != "" || out.String() != "" {
		t.Fatalf("the server started something: logs\n%s\nout\n%s", logs.String(), out.String())
	}
}
