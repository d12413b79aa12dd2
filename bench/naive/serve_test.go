package naive

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/leaktest"
)

// ListenAndServe serves until its context ends, then returns having
// stopped everything it started.
func TestListenAndServe(t *testing.T) {
	leaktest.Check(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- ListenAndServe(ctx, addr, Config{Logger: slog.New(slog.DiscardHandler)})
	}()
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for ready := false; !ready; {
		if resp, err := client.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		select {
		case err := <-served:
			t.Fatalf("stopped before serving: %v", err)
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("not ready")
		}
	}
	client.CloseIdleConnections()
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get("http://" + addr + "/readyz"); err == nil {
		t.Fatal("still serving after its context ended")
	}
}

// A port it cannot listen on is an error at once.
func TestListenAndServeBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = ListenAndServe(context.Background(), busy.Addr().String(), Config{Logger: slog.New(slog.DiscardHandler)})
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "listen" {
		t.Fatalf("err = %v, want the listen error", err)
	}
}
