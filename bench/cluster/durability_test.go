package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/troupe-media/troupe/internal/poll"
)

// The durability run: rooms written by concurrent writers, one room per
// writer at a time, while nodes are killed and replaced.
const (
	durableRooms   = 10
	durableWriters = 5
	// durableUpdates is the acknowledged PATCHes; with the creates, the
	// run acknowledges more than 200 writes.
	durableUpdates = 200
	durableKills   = 4
	// writeRetry is a writer's pause after a write that was not
	// acknowledged, before it sends it again.
	writeRetry = 50 * time.Millisecond
)

// Random SIGKILLs of nodes across more than 200 acknowledged REST writes
// lose none: every room reads back its last acknowledged name through
// every node, and a webhook receiver gets the event of every acknowledged
// write at least once, each room's in the order of its writes (a retry
// may repeat one).
func TestDurability(t *testing.T) {
	run := runDurability(t)
	for r := range durableRooms {
		room := roomName(r)
		for seq := 0; seq <= run.last[r]; seq++ {
			if !run.hooks.seen(room, seq) {
				t.Errorf("no webhook for %s's write %d", room, seq)
			}
		}
		if got := run.hooks.order(room); !slices.IsSorted(got) {
			t.Errorf("%s's events arrived in the order of writes %v", room, got)
		}
	}
}

// durabilityRun is what runDurability did and saw.
type durabilityRun struct {
	c     *Cluster
	hooks *hookReceiver
	last  [durableRooms]int // the last acknowledged write of each room
}

// runDurability writes rooms through random live nodes while it kills
// nodes at random moments, and checks that every acknowledged write is
// read back through every live node; it then waits until the webhook
// receiver has seen an event for every acknowledged write.
func runDurability(t *testing.T) *durabilityRun {
	hooks := newHookReceiver(t)
	c := startCluster(t, Config{Args: []string{"--webhook-urls", hooks.url(), "--webhook-allow-private", "--webhook-events", "room-*"}})
	run := &durabilityRun{c: c, hooks: hooks}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var acked atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for w := range durableWriters {
		g.Go(func() error {
			// Writer w owns the rooms r with r % durableWriters == w, so
			// that each room's writes are acknowledged in order.
			for r := w; r < durableRooms; r += durableWriters {
				if err := durableWrite(gctx, c, "POST", "/api/v1/rooms", map[string]any{"id": roomName(r), "name": roomName(r) + "-0"}); err != nil {
					return err
				}
				acked.Add(1)
			}
			for i := 0; i < durableUpdates/durableWriters; i++ {
				r := w + (i%(durableRooms/durableWriters))*durableWriters
				seq := run.last[r] + 1
				if err := durableWrite(gctx, c, "PATCH", "/api/v1/rooms/"+roomName(r), map[string]any{"name": fmt.Sprintf("%s-%d", roomName(r), seq)}); err != nil {
					return err
				}
				run.last[r] = seq
				acked.Add(1)
			}
			return nil
		})
	}
	// The kills, at random points of the run, each replaced by a new node
	// so that the cluster keeps three.
	total := int64(durableRooms + durableUpdates)
	for k := range durableKills {
		at := total * int64(k+1) / (durableKills + 1)
		at += rand.Int64N(total/(2*(durableKills+1))) - total/(4*(durableKills+1))
		poll.Until(t, fmt.Sprintf("%d acknowledged writes", at), func() bool { return acked.Load() >= at || gctx.Err() != nil })
		if gctx.Err() != nil {
			break
		}
		live := c.Live()
		victim := live[rand.IntN(len(live))]
		victim.Kill()
		t.Logf("killed %s after %d acknowledged writes", victim.ID, acked.Load())
		c.AddNode()
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if n := acked.Load(); n < 200 {
		t.Fatalf("%d writes acknowledged, want at least 200", n)
	}
	for _, n := range c.Live() {
		for r := range durableRooms {
			var room struct {
				Name string `json:"name"`
			}
			// A room whose owner died last answers 503 room_unavailable
			// until another node has it: a client retries.
			var resp Response
			poll.Until(t, roomName(r)+" to answer through "+n.ID, func() bool {
				var err error
				resp, err = c.Do(ctx, n, http.MethodGet, "/api/v1/rooms/"+roomName(r), nil)
				if err != nil {
					t.Fatal(err)
				}
				return resp.Status != http.StatusServiceUnavailable
			})
			if resp.Status != http.StatusOK {
				t.Fatalf("GET %s through %s: %d %s", roomName(r), n.ID, resp.Status, resp.Body)
			}
			if err := resp.JSON(&room); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%s-%d", roomName(r), run.last[r]); room.Name != want {
				t.Errorf("%s through %s is named %q, want %q: an acknowledged write was lost", roomName(r), n.ID, room.Name, want)
			}
		}
	}
	poll.Until(t, "a webhook for every acknowledged write", func() bool {
		for r := range durableRooms {
			for seq := 0; seq <= run.last[r]; seq++ {
				if !hooks.seen(roomName(r), seq) {
					return false
				}
			}
		}
		return true
	})
	return run
}

func roomName(r int) string { return "dur" + strconv.Itoa(r) }

// durableWrite sends a write through a random live node until one
// acknowledges it (2xx): a node may be dead, or the room's owner may be,
// until its lease expires. A create already done (409 room_exists: a try
// that was applied but whose answer was lost) counts as acknowledged.
func durableWrite(ctx context.Context, c *Cluster, method, path string, body any) error {
	for {
		live := c.Live()
		n := live[rand.IntN(len(live))]
		resp, err := c.Do(ctx, n, method, path, body)
		switch {
		case err == nil && resp.Status/100 == 2:
			return nil
		case err == nil && method == "POST" && resp.Status == http.StatusConflict:
			return nil
		case err == nil && resp.Status/100 == 4 && resp.Status != http.StatusConflict:
			return fmt.Errorf("%s %s through %s: %d %s", method, path, n.ID, resp.Status, resp.Body)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The pause of a client that retries: nothing to wait on.
		time.Sleep(writeRetry)
	}
}

// hookReceiver records the room events Troupe's nodes deliver: each
// delivery once, by its id, in the order they first arrived.
type hookReceiver struct {
	srv *httptest.Server

	mu     sync.Mutex // guards the following
	ids    map[string]bool
	byRoom map[string][]int // the write sequence number of each first delivery, per room
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{ids: map[string]bool{}, byRoom: map[string][]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + "/hook" }

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ev struct {
		ID     string `json:"id"`
		Event  string `json:"event"`
		RoomID string `json:"room_id"`
		Data   struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ids[ev.ID] || (ev.Event != "room-created" && ev.Event != "room-updated") {
		return
	}
	h.ids[ev.ID] = true
	_, seq, _ := strings.Cut(ev.Data.Name, "-")
	n, err := strconv.Atoi(seq)
	if err != nil {
		n = -1
	}
	h.byRoom[ev.RoomID] = append(h.byRoom[ev.RoomID], n)
}

// seen reports whether the event of room's write seq has arrived.
func (h *hookReceiver) seen(room string, seq int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.byRoom[room] {
		if n == seq {
			return true
		}
	}
	return false
}

// order returns the write sequence numbers of room's deliveries, in the
// order they first arrived.
func (h *hookReceiver) order(room string) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.byRoom[room]...)
}
