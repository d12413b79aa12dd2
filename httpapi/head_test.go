package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// HEAD /healthz and /readyz answer as GET does, status and headers,
// without a body: some load balancers and uptime checks probe with HEAD.
func TestHealthProbesAnswerHEAD(t *testing.T) {
	var draining atomic.Bool
	s := newStack(t, func(c *Config) {
		c.Ready = func(context.Context) error {
			if draining.Load() {
				return &NotReadyError{Reason: "shutting down"}
			}
			return nil
		}
	})
	head := func(path string) (status string, rest string) {
		t.Helper()
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(poll.Timeout)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "HEAD "+path+" HTTP/1.1\r\nHost: troupe\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(conn)
		if err != nil {
			t.Fatal(err)
		}
		status, rest, _ = strings.Cut(string(raw), "\r\n")
		_, body, ok := strings.Cut(rest, "\r\n\r\n")
		if !ok || body != "" {
			t.Fatalf("HEAD %s: %q, want headers and no body", path, raw)
		}
		return status, rest
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, _ := head(path); status != "HTTP/1.1 200 OK" {
			t.Errorf("HEAD %s: %s", path, status)
		}
	}
	draining.Store(true)
	if status, headers := head("/readyz"); status != "HTTP/1.1 503 Service Unavailable" || !strings.Contains(headers, "Retry-After") {
		t.Errorf("HEAD /readyz while draining: %s\n%s", status, headers)
	}
	if r := s.do(t, http.MethodGet, "/readyz", "", header{"Authorization", ""}); r.status != http.StatusServiceUnavailable || len(r.body) == 0 {
		t.Errorf("GET /readyz while draining: %d %q", r.status, r.body)
	}
}
