package cluster

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/troupe-media/troupe/actors/webhook"
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
	// hookDeadline bounds the wait for the webhooks after the writes.
	hookDeadline = 2 * time.Minute
)

// Random SIGKILLs of nodes across more than 200 acknowledged REST writes
// lose none: every room reads back its last acknowledged name through
// every node. The webhooks keep their promises across the kills, while the
// receiver refuses or stalls the first attempt of two events in three:
// every acknowledged write's event arrives and is acknowledged, every
// event queued is delivered and none is given up on, each retry carries
// the delivery id of the event's first attempt, and each room's events
// first arrive in the order of its writes, each only once the one before
// it was acknowledged.
func TestDurability(t *testing.T) {
	run := runDurability(t)
	h := run.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.problems {
		t.Error(p)
	}
	// The faults happened, so the retries were checked.
	if h.refused == 0 || h.stalled == 0 {
		t.Errorf("the receiver refused %d and stalled %d first attempts: the run retried nothing", h.refused, h.stalled)
	}
	t.Logf("webhooks: %d events in %d attempts; %d first attempts refused, %d stalled (%d of them ended by the sender), %d attempts after an acknowledgement",
		len(h.events), h.attempts, h.refused, h.stalled, h.stallsCut, h.again)
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
// receiver has acknowledged an event for every acknowledged write, and the
// outbox is empty.
func runDurability(t *testing.T) *durabilityRun {
	hooks := newHookReceiver(t)
	c := startCluster(t, Config{Args: []string{"--webhook-urls", hooks.url(), "--webhook-allow-private", "--webhook-events", "room-*"}})
	hooks.verify([]byte(c.Key().Secret)) // before the first write, the first event
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
	// The deadline bounds a failure only: the refused and stalled first
	// attempts each cost their room's queue a backoff.
	poll.Within(t, hookDeadline, "a webhook for every acknowledged write", func() bool {
		for r := range durableRooms {
			for seq := 0; seq <= run.last[r]; seq++ {
				if !hooks.seen(roomName(r), seq) {
					return false
				}
			}
		}
		return true
	})
	// The outbox, which every node shares, empties: each event queued,
	// those of writes applied twice or not acknowledged too, was
	// delivered, none given up on.
	n := c.Live()[0]
	poll.Within(t, hookDeadline, "the webhook outbox to empty", func() bool {
		v, err := c.Metric(ctx, n, "troupe_webhook_pending")
		if err != nil {
			t.Fatal(err)
		}
		return v == 0
	})
	if v, err := c.Metric(ctx, n, "troupe_webhook_failed"); err != nil || v != 0 {
		t.Errorf("%v webhook deliveries given up on (%v)", v, err)
	}
	if un := hooks.unacked(); len(un) > 0 {
		t.Errorf("events that arrived but were never acknowledged, though the outbox is empty: %v", un)
	}
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

// stallFor is how long the receiver holds a stalled first attempt before
// it refuses it: shorter than the nodes' one second after which an endpoint
// counts as silent, so that a stall slows its room's queue only.
const stallFor = 300 * time.Millisecond

// hookReceiver is the webhook endpoint of the durability run. Of each
// room's events, in the order they first arrive, it refuses the first
// attempt of every third (503 at once) and stalls the first attempt of the
// one after (it holds the request, then refuses it, unless the sender
// ends it first: a node that dies mid-request), so that deliveries are
// retried all through the run, and across the kills. It records every
// attempt, and the broken promises it sees as they happen: a retry whose
// delivery id is not its first attempt's, a delivery id given to two
// events, a Troupe-Delivery header that is not the body's id, an event
// that arrives while one that arrived before it in its room was not yet
// acknowledged (a 2xx), an event that reports an earlier write than one
// before it, a delivery not signed with the cluster's secret.
//
// An event is known by its body without the delivery id (its kind, room,
// time and data): what a retry sends again, whatever its id.
type hookReceiver struct {
	srv  *httptest.Server
	stop chan struct{} // closed when the test ends: stalls end at once

	mu       sync.Mutex    // guards the following
	stall    time.Duration // stallFor, unless a test of the receiver says
	secret   []byte        // the key pair's secret that signs the deliveries, once known
	events   map[string]*hookEvent
	ids      map[string]*hookEvent   // by delivery id
	byRoom   map[string][]*hookEvent // each room's events, in the order they first arrived
	problems []string
	// What the run saw: attempts, first attempts refused and stalled,
	// stalls their sender ended, and attempts after the event's
	// acknowledgement.
	attempts, refused, stalled, stallsCut, again int
}

// hookEvent is one event as the receiver saw it.
type hookEvent struct {
	key      string
	kind     string
	room     string
	seq      int    // the write it reports, -1 for one of another kind
	id       string // the delivery id of its first attempt
	attempts int
	acked    bool // an attempt was answered 2xx
}

// hookFault is what the receiver does to an event's first attempt.
type hookFault int

const (
	faultNone hookFault = iota
	faultRefuse
	faultStall
)

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{
		stop:   make(chan struct{}),
		stall:  stallFor,
		events: map[string]*hookEvent{},
		ids:    map[string]*hookEvent{},
		byRoom: map[string][]*hookEvent{},
	}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(func() {
		close(h.stop)
		h.srv.Close()
	})
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + "/hook" }

// verify makes the receiver check that every delivery is signed with
// secret.
func (h *hookReceiver) verify(secret []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = secret
}

func (h *hookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The sender went away mid-request: nothing arrived.
		return
	}
	id := r.Header.Get("Troupe-Delivery")
	h.mu.Lock()
	secret := h.secret
	h.mu.Unlock()
	// Whichever node sends it, with the secret every node shares; the
	// signature's age is not what this run looks at.
	if err := webhook.Verify(r.Header.Get("Troupe-Signature"), secret, body, time.Now(), 0); secret != nil && err != nil {
		h.problem("a delivery %s not signed with the cluster's secret: %v", id, err)
	}
	var fields map[string]json.RawMessage
	var ev struct {
		ID     string `json:"id"`
		Event  string `json:"event"`
		RoomID string `json:"room_id"`
		Data   struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		h.problem("a delivery that is not a JSON object: %v: %s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		h.problem("a delivery that is not an event: %v: %s", err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if id == "" || id != ev.ID {
		h.problem("a delivery of %s whose Troupe-Delivery header %q is not its id %q", ev.Event, id, ev.ID)
	}
	delete(fields, "id")
	key, err := json.Marshal(fields) // map keys sorted: the same for the same event
	if err != nil {
		h.problem("%v", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}

	fault, stall := h.arrive(string(key), ev.ID, ev.Event, ev.RoomID, ev.Data.Name)
	switch fault {
	case faultRefuse:
		http.Error(w, "refused once by the test", http.StatusServiceUnavailable)
		return
	case faultStall:
		t := time.NewTimer(stall)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			h.mu.Lock()
			h.stallsCut++
			h.mu.Unlock()
			return
		case <-h.stop:
			return
		}
		http.Error(w, "stalled, then refused once by the test", http.StatusServiceUnavailable)
		return
	}
	h.mu.Lock()
	h.events[string(key)].acked = true
	h.mu.Unlock()
}

// arrive records an attempt and the promises it breaks, and returns what
// to do with it, and how long a stall is.
func (h *hookReceiver) arrive(key, id, kind, room, name string) (hookFault, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts++
	e := h.events[key]
	if other := h.ids[id]; other != nil && other != e {
		h.problemLocked("delivery id %s given to two events: %s and %s", id, other.key, key)
	}
	if e != nil {
		e.attempts++
		if id != e.id {
			h.problemLocked("%s of %s (write %d) retried with delivery id %s, first sent as %s", kind, room, e.seq, id, e.id)
		}
		if e.acked {
			h.again++
		}
		return faultNone, 0
	}
	e = &hookEvent{key: key, kind: kind, room: room, seq: -1, id: id, attempts: 1}
	if kind == "room-created" || kind == "room-updated" {
		if _, seq, ok := strings.Cut(name, "-"); ok {
			if n, err := strconv.Atoi(seq); err == nil {
				e.seq = n
			}
		}
		if e.seq < 0 {
			h.problemLocked("%s of %s names no write: %q", kind, room, name)
		}
	}
	h.events[key] = e
	h.ids[id] = e
	before := h.byRoom[room]
	for _, b := range before {
		if !b.acked {
			h.problemLocked("%s of %s (write %d) arrived while %s (write %d), which arrived before it, was not acknowledged", kind, room, e.seq, b.kind, b.seq)
		}
		if e.seq >= 0 && b.seq > e.seq {
			h.problemLocked("%s of %s's write %d arrived after the event of its write %d", kind, room, e.seq, b.seq)
		}
	}
	h.byRoom[room] = append(before, e)
	switch len(before) % 3 {
	case 1:
		h.refused++
		return faultRefuse, 0
	case 2:
		h.stalled++
		return faultStall, h.stall
	}
	return faultNone, 0
}

func (h *hookReceiver) problem(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problemLocked(format, args...)
}

func (h *hookReceiver) problemLocked(format string, args ...any) {
	h.problems = append(h.problems, fmt.Sprintf(format, args...))
}

// seen reports whether the event of room's write seq has been
// acknowledged.
func (h *hookReceiver) seen(room string, seq int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.byRoom[room] {
		if e.seq == seq && e.acked {
			return true
		}
	}
	return false
}

// unacked returns the events that arrived and were never acknowledged.
func (h *hookReceiver) unacked() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if !e.acked {
			out = append(out, fmt.Sprintf("%s of %s (write %d, %d attempts)", e.kind, e.room, e.seq, e.attempts))
		}
	}
	slices.Sort(out)
	return out
}

// The durability run's receiver sees the broken promises it looks for: a
// retry with another delivery id, a delivery id given to a second event, a
// header that is not the body's id, an event that arrives before the one
// ahead of it was acknowledged, and one that reports an earlier write. Its
// faults are the first attempts of a room's second and third events; a
// retry with the same id is acknowledged.
func TestHookReceiver(t *testing.T) {
	h := newHookReceiver(t)
	client := &http.Client{Timeout: poll.Timeout} // a bound against a hang
	t.Cleanup(client.CloseIdleConnections)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	secret := []byte(strings.Repeat("s", 32))
	h.verify(secret)
	signer := secret
	post := func(header, id, kind, room string, seq, second int) int {
		t.Helper()
		body, err := json.Marshal(map[string]any{
			"id": id, "event": kind, "room_id": room, "session_id": nil,
			"created_at": at.Add(time.Duration(second) * time.Second),
			"data":       map[string]any{"id": room, "name": fmt.Sprintf("%s-%d", room, seq)},
		})
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.url(), strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Troupe-Delivery", header)
		req.Header.Set("Troupe-Signature", webhook.Sign(signer, time.Now(), body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	problems := func() []string {
		h.mu.Lock()
		defer h.mu.Unlock()
		p := h.problems
		h.problems = nil
		return p
	}
	for _, s := range []struct {
		what                   string
		header, id, kind, room string
		seq, second, status    int
		problem                string // in the one problem it makes, or "" for none
	}{
		{"the first event", "d0", "d0", "room-created", "r", 0, 0, 200, ""},
		{"the second event's first attempt", "d1", "d1", "room-updated", "r", 1, 1, 503, ""},
		{"the third event before the second was acknowledged", "d2", "d2", "room-updated", "r", 2, 2, 503,
			"room-updated of r (write 2) arrived while room-updated (write 1), which arrived before it, was not acknowledged"},
		{"a retry of the second with another id", "d9", "d9", "room-updated", "r", 1, 1, 200,
			"room-updated of r (write 1) retried with delivery id d9, first sent as d1"},
		{"a retry of the second with its id", "d1", "d1", "room-updated", "r", 1, 1, 200, ""},
		{"a retry of the third with its id", "d2", "d2", "room-updated", "r", 2, 2, 200, ""},
		{"an event of an earlier write", "d3", "d3", "room-updated", "r", 1, 3, 200,
			"room-updated of r's write 1 arrived after the event of its write 2"},
		{"a delivery id given to another event", "d3", "d3", "room-updated", "r", 4, 4, 503,
			"delivery id d3 given to two events"},
		{"a header that is not the body's id", "d5", "d6", "room-created", "q", 0, 5, 200,
			`Troupe-Delivery header "d5" is not its id "d6"`},
	} {
		if got := post(s.header, s.id, s.kind, s.room, s.seq, s.second); got != s.status {
			t.Errorf("%s: answered %d, want %d", s.what, got, s.status)
		}
		got := problems()
		if s.problem == "" && len(got) > 0 || s.problem != "" && (len(got) != 1 || !strings.Contains(got[0], s.problem)) {
			t.Errorf("%s: problems %q, want one with %q", s.what, got, s.problem)
		}
	}
	signer = []byte(strings.Repeat("x", 32))
	if got, want := post("p0", "p0", "room-created", "p", 0, 7), 200; got != want {
		t.Errorf("a delivery signed with another secret: answered %d, want %d", got, want)
	}
	if got := problems(); len(got) != 1 || !strings.Contains(got[0], "a delivery p0 not signed with the cluster's secret") {
		t.Errorf("a delivery signed with another secret: problems %q", got)
	}
	signer = secret

	if un := h.unacked(); len(un) != 1 || !strings.Contains(un[0], "write 4") {
		t.Errorf("unacknowledged: %q, want the event of write 4", un)
	}
	if !h.seen("r", 2) || h.seen("r", 4) {
		t.Errorf("seen: write 2 %v, write 4 %v; want true, false", h.seen("r", 2), h.seen("r", 4))
	}

	// A stalled attempt its sender ends, as a node that dies, is not
	// acknowledged: q's third event's first attempt is stalled, for longer
	// than the test.
	h.mu.Lock()
	h.stall = time.Hour
	h.mu.Unlock()
	if got := post("q1", "q1", "room-updated", "q", 1, 6); got != 503 {
		t.Fatalf("q's second event's first attempt: answered %d, want 503", got)
	}
	if got := post("q1", "q1", "room-updated", "q", 1, 6); got != 200 {
		t.Fatalf("q's second event's retry: answered %d, want 200", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	body := `{"id":"q2","event":"room-updated","room_id":"q","data":{"name":"q-2"}}`
	sig := webhook.Sign(secret, time.Now(), []byte(body))
	go func() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url(), strings.NewReader(body))
		if err == nil {
			req.Header.Set("Troupe-Delivery", "q2")
			req.Header.Set("Troupe-Signature", sig)
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				resp.Body.Close()
			}
		}
		done <- err
	}()
	poll.Until(t, "q's third event to be stalled", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.stalled == 2
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the stalled attempt ended with %v, want its cancellation", err)
	}
	poll.Until(t, "the receiver to see the stalled attempt end", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.stallsCut == 1
	})
	if h.seen("q", 2) || len(problems()) > 0 {
		t.Errorf("a stalled attempt ended by its sender: seen %v, problems %q", h.seen("q", 2), problems())
	}
}
