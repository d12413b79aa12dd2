package cluster

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/bench/mediaload"
)

// runManyRooms runs `troupe bench media --server` against one node of the
// cluster, with every node's process id, for a short many-rooms scenario,
// and returns the steps it reported and the ids of the rooms it made.
func runManyRooms(t *testing.T, c *Cluster, rooms int) ([]mediaload.Step, []string) {
	t.Helper()
	entry := c.Live()[0]
	var pids []string
	for _, n := range c.Live() {
		pids = append(pids, strconv.Itoa(n.PID()))
	}
	report := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.CommandContext(t.Context(), troupeExe(t), "bench", "media",
		"--server", entry.URL, "--token", c.Token(), "--server-pid", strings.Join(pids, ","),
		"--scenario", "many-rooms", "--rooms", strconv.Itoa(rooms), "--duration", "2s", "--json", report)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("troupe bench media: %v\n%s", err, out)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Steps []mediaload.Step `json:"steps"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
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

// `troupe bench media --server` pointed at one node of a cluster runs a
// many-rooms scenario: the rooms spread over the nodes, every participant
// receives every track, whichever node owns its room, and the server's CPU
// is the nodes' sum.
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
	if s.ServerCPUSeconds <= 0 || s.ServerRSSBytes <= 0 || s.CPUPerPacketUs <= 0 {
		t.Errorf("server figures not measured: %v s CPU, %d bytes RSS, %v µs per packet", s.ServerCPUSeconds, s.ServerRSSBytes, s.CPUPerPacketUs)
	}
	// The rooms, all created through one node, spread over the nodes.
	owners := map[string]int{}
	for _, id := range ids {
		o, err := c.Owner(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		owners[o.ID]++
	}
	if len(owners) != len(c.Live()) {
		t.Errorf("%d rooms on %d of %d nodes: %v", len(ids), len(owners), len(c.Live()), owners)
	}
	t.Logf("%d rooms on %v; loss %.4f, %.2f µs CPU per forwarded packet", len(ids), owners, s.LossRatio, s.CPUPerPacketUs)
}
