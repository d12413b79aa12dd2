package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/troupe-media/troupe/internal/syncbuf"
)

// /readyz logs a change of state once, not once per probe, and shows the
// reason of a NotReadyError (wrapped or not) but nothing of another error.
func TestReadyzLogsChangesOnce(t *testing.T) {
	var logs syncbuf.Buffer
	var mu sync.Mutex
	var readyErr error
	s := newStack(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		c.Ready = func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return readyErr
		}
	})
	setReady := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		readyErr = err
	}
	noAuth := header{"Authorization", ""}
	probe := func(want int, message string) {
		t.Helper()
		for range 3 {
			r := s.do(t, http.MethodGet, "/readyz", "", noAuth)
			mustStatus(t, r, want)
			if want != http.StatusOK && (r.errorCode(t) != codeNotReady || !strings.Contains(string(r.body), `"message":"`+message+`"`)) {
				t.Fatalf("readyz: %s, want message %q", r.body, message)
			}
		}
	}
	probe(http.StatusOK, "")
	setReady(fmt.Errorf("drain: %w", &NotReadyError{Reason: "shutting down"}))
	probe(http.StatusServiceUnavailable, "not ready: shutting down")
	setReady(fmt.Errorf("store closed at /var/secret/path"))
	probe(http.StatusServiceUnavailable, "not ready")
	setReady(nil)
	probe(http.StatusOK, "")

	got := logs.String()
	if n := strings.Count(got, `level=WARN msg="not ready"`); n != 2 {
		t.Fatalf("%d not-ready warnings, want one per change (2):\n%s", n, got)
	}
	if n := strings.Count(got, `msg=ready`); n != 1 {
		t.Fatalf("%d ready lines, want 1:\n%s", n, got)
	}
}
