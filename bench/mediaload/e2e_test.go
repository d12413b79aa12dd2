package mediaload_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorstest"
	"github.com/troupe-media/troupe/bench/mediaload"
	"github.com/troupe-media/troupe/bench/naive"
	"github.com/troupe-media/troupe/bench/scenarios"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
)

// troupeServer serves the real stack in-process, wired as `troupe serve`
// wires it, on loopback.
func troupeServer(t *testing.T) mediaload.Target {
	t.Helper()
	target, _ := troupeStack(t)
	return target
}

// troupeStack is troupeServer with its room actors.
func troupeStack(t *testing.T) (mediaload.Target, *actors.Rooms) {
	t.Helper()
	cp := actorstest.Start(t, true, nil)
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Rooms: cp.Rooms, Verifier: verifier, SigningKey: key, Idempotency: actors.NewIdempotency(cp.Store), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(func() { // before actorstest's: HTTP stops before the actors
		ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		srv.Close()
		if err := api.Close(ctx); err != nil {
			t.Errorf("close api: %v", err)
		}
	})
	admin, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// In-process, the "server" figures include the clients: the test
	// checks that they are measured, not their size.
	return mediaload.Target{Name: "troupe", BaseURL: srv.URL, Token: admin, PIDs: []int{os.Getpid()}}, cp.Rooms
}

func naiveServer(t *testing.T) mediaload.Target {
	t.Helper()
	n, err := naive.New(naive.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n)
	t.Cleanup(func() {
		srv.Close()
		n.Close()
		srv.Client().CloseIdleConnections()
	})
	return mediaload.Target{Name: "naive-pion", BaseURL: srv.URL, PIDs: []int{os.Getpid()}}
}

// A short video fan-out to two subscribers through each server: every
// packet arrives, and every figure of the step is measured. Nothing here
// depends on the machine's speed: a loaded machine sends fewer packets in
// the window and takes longer to carry them, so rates and latencies are
// checked for sense, not size.
func TestVideoFanoutEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs WebRTC peers for seconds")
	}
	sc, err := scenarios.Load("video-fanout")
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = sc.With(scenarios.Overrides{Subscribers: 2, Duration: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	const deadline = 3 * time.Minute // generous: joins on a loaded machine are slow
	for _, c := range []struct {
		name   string
		target func(*testing.T) mediaload.Target
	}{{"troupe", troupeServer}, {"naive-pion", naiveServer}} {
		t.Run(c.name, func(t *testing.T) {
			leaktest.Check(t)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			res, err := mediaload.Run(ctx, mediaload.Config{
				Target: c.target(t), Scenario: sc, JoinTimeout: deadline / 2,
				// Latency is reported, not judged: the step is within limits
				// if every packet arrives.
				MaxP99: deadline,
				Logger: slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Steps) != 1 {
				t.Fatalf("%d steps, want 1", len(res.Steps))
			}
			s := res.Steps[0]
			t.Logf("%+v", s)
			// The sender's ticker drops the ticks a busy machine misses, so
			// the window holds at most its duration's frames, and one or two
			// more: a tick that was waiting, and the frame at its start.
			v := sc.Video
			most := int64(s.Subscribers * (int(s.Seconds*float64(v.FPS)) + 3) * v.PacketsPerFrame())
			if s.ExpectedPackets <= 0 || s.ExpectedPackets > most {
				t.Errorf("expected %d packets in %.2f s, want 1 to %d", s.ExpectedPackets, s.Seconds, most)
			}
			if s.LossRatio > 0.01 || s.ReceivedPackets > s.ExpectedPackets || s.MissingTracks != 0 {
				t.Errorf("received %d of %d packets, %d tracks missing", s.ReceivedPackets, s.ExpectedPackets, s.MissingTracks)
			}
			if s.Server != c.name || s.Scenario != "video-fanout" || s.Publishers != 1 || s.Subscribers != 2 || s.Participants != 3 {
				t.Errorf("step labels: %+v", s)
			}
			if s.Joins != 2 || s.JoinFailures != 0 || s.JoinToFirstPacketP50Ms <= 0 || s.JoinToFirstPacketP99Ms < s.JoinToFirstPacketP50Ms {
				t.Errorf("joins %d, failures %d, join to first packet p50 %v p99 %v", s.Joins, s.JoinFailures, s.JoinToFirstPacketP50Ms, s.JoinToFirstPacketP99Ms)
			}
			// In milliseconds: no packet took longer than the whole run.
			if s.LatencyP50Ms <= 0 || s.LatencyP99Ms < s.LatencyP50Ms || s.LatencyMaxMs < s.LatencyP99Ms || s.LatencyMaxMs > float64(deadline/time.Millisecond) {
				t.Errorf("latency p50 %v p99 %v max %v ms", s.LatencyP50Ms, s.LatencyP99Ms, s.LatencyMaxMs)
			}
			// The path ends at the subscriber's socket, before its client's
			// processing: never later than the end-to-end figure.
			if s.PathLatencyP50Ms <= 0 || s.PathLatencyP99Ms < s.PathLatencyP50Ms || s.PathLatencyMaxMs < s.PathLatencyP99Ms || s.PathLatencyP99Ms > s.LatencyMaxMs {
				t.Errorf("path latency p50 %v p99 %v max %v ms, end-to-end max %v ms", s.PathLatencyP50Ms, s.PathLatencyP99Ms, s.PathLatencyMaxMs, s.LatencyMaxMs)
			}
			if s.ServerRSSBytes <= 0 || s.ServerCPUSeconds <= 0 || s.CPUPerPacketUs <= 0 || s.PacketsPerSecPerCore <= 0 || s.ClientCPUSeconds <= 0 {
				t.Errorf("resources not measured: %+v", s)
			}
			if s.ForwardedPacketsPerSec != float64(s.ReceivedPackets)/s.Seconds || !s.WithinLimits || res.Capacity != 2 {
				t.Errorf("forwarded %v packets/s, within limits %v, capacity %d", s.ForwardedPacketsPerSec, s.WithinLimits, res.Capacity)
			}
		})
	}
}

// dropOnce is a progress writer that drops every room of the server once
// the measuring window has run for a second, as a cluster node that lost
// its lease does.
type dropOnce struct {
	t     *testing.T
	rooms *actors.Rooms
	once  sync.Once
}

func (d *dropOnce) Write(b []byte) (int, error) {
	if strings.Contains(string(b), "participants, 1s of") {
		d.once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
			defer cancel()
			if err := d.rooms.DropAll(ctx); err != nil {
				d.t.Errorf("drop rooms: %v", err)
			}
		})
	}
	return len(b), nil
}

// The server drops its rooms in the middle of a step: every client joins
// again by itself, and the step counts the reconnections and the time
// without media.
func TestRunReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs WebRTC peers for seconds")
	}
	leaktest.Check(t)
	sc, err := scenarios.Load("video-fanout")
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = sc.With(scenarios.Overrides{Subscribers: 2, Duration: 3 * time.Second}); err != nil {
		t.Fatal(err)
	}
	const deadline = 3 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	target, rooms := troupeStack(t)
	res, err := mediaload.Run(ctx, mediaload.Config{
		Target: target, Scenario: sc, JoinTimeout: deadline / 2, MaxP99: deadline,
		Progress: &dropOnce{t: t, rooms: rooms}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Steps[0]
	t.Logf("%+v", s)
	if s.Reconnects != s.Participants || s.OutageSeconds <= 0 {
		t.Errorf("%d reconnections of %d participants, %.3f s without media: want each back once, the outage counted", s.Reconnects, s.Participants, s.OutageSeconds)
	}
	if s.ReceivedPackets <= 0 || s.MissingTracks != 0 {
		t.Errorf("received %d of %d packets, %d tracks missing", s.ReceivedPackets, s.ExpectedPackets, s.MissingTracks)
	}
}

// A refused join ends the run with an error, and nothing is left behind.
func TestRunFailsCleanly(t *testing.T) {
	leaktest.Check(t)
	sc, err := scenarios.Load("audio-room")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if _, err := mediaload.Run(ctx, mediaload.Config{Target: mediaload.Target{BaseURL: srv.URL}, Scenario: sc}); err == nil {
		t.Fatal("a run against a server with no API succeeded")
	}
	if _, err := mediaload.Run(ctx, mediaload.Config{Scenario: sc}); err == nil {
		t.Fatal("a run without a target succeeded")
	}
}
