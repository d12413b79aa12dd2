package cluster

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/mediaload"
	"github.com/troupe-media/troupe/bench/scenarios"
)

// runManyRooms runs a short many-rooms scenario with `bench media`'s
// runner against one node of a cluster, as `troupe bench media --server`
// does, and returns the steps and the ids of the rooms it made.
func runManyRooms(t *testing.T, c *Cluster, rooms int) ([]mediaload.Step, []string) {
	t.Helper()
	sc, err := scenarios.Load("many-rooms")
	if err != nil {
		t.Fatal(err)
	}
	if sc, err = sc.With(scenarios.Overrides{Rooms: rooms, Duration: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	entry := c.Live()[0]
	res, err := mediaload.Run(t.Context(), mediaload.Config{
		Target:   mediaload.Target{BaseURL: entry.URL, Token: c.Token()},
		Scenario: sc,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Rooms []struct {
			ID string `json:"id"`
		} `json:"rooms"`
	}
	if err := c.Expect(entry, http.StatusOK, "GET", "/api/v1/rooms?limit=100", nil).JSON(&list); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list.Rooms {
		ids = append(ids, r.ID)
	}
	return res.Steps, ids
}

// The media benchmark's runner, pointed at one node of a cluster, runs a
// many-rooms scenario: every participant receives every track, whichever
// node owns its room.
func TestBenchMediaThroughCluster(t *testing.T) {
	c := startCluster(t, Config{})
	steps, ids := runManyRooms(t, c, 3)
	if len(steps) != 1 || len(ids) != 3 {
		t.Fatalf("%d steps, %d rooms", len(steps), len(ids))
	}
	s := steps[0]
	if s.MissingTracks != 0 || s.JoinFailures != 0 || s.ReceivedPackets == 0 {
		t.Fatalf("through %s: %d tracks missing, %d joins failed, %d of %d packets", c.Live()[0].ID, s.MissingTracks, s.JoinFailures, s.ReceivedPackets, s.ExpectedPackets)
	}
	owners := map[string]int{}
	for _, id := range ids {
		o, err := c.Owner(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		owners[o.ID]++
	}
	t.Logf("%d rooms on %v; loss %.4f", len(ids), owners, s.LossRatio)
}
