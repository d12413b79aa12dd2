package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/troupe-media/troupe/actors/webhook/webhooktest"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var defaultSecret = []byte("api-secret")

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openStore(t *testing.T, dir string) *persistence.Store {
	t.Helper()
	s, err := persistence.Open(persistence.Config{Dir: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receiver is a webhook endpoint on 127.0.0.1 that checks every request's
// headers and signature, and answers what respond says.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret []byte
	// respond returns the status for a delivery's try-th attempt (from 1).
	respond func(p Payload, try int) int
	// now is the clock signatures are checked against; the Deliverer's.
	now func() time.Time
	// hold, if set, is called before answering; false drops the request
	// unanswered (its sender gave up on it).
	hold func(req *http.Request) bool

	mu       sync.Mutex
	tries    map[string]int // attempts per delivery id
	accepted []Payload      // 2xx answers, in arrival order
	from     []string       // the node header of each accepted request
	problems []string
}

func newReceiver(t testing.TB, secret []byte, respond func(p Payload, try int) int) *receiver {
	r := &receiver{t: t, secret: secret, respond: respond, now: time.Now, tries: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var problems []string
	if err := Verify(req.Header.Get("Troupe-Signature"), r.secret, body, r.now(), 5*time.Minute); err != nil {
		problems = append(problems, "signature: "+err.Error())
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		problems = append(problems, "body: "+err.Error())
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(body, &fields)
	var keys []string
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if strings.Join(keys, ",") != "created_at,data,event,id,room_id,session_id" {
		problems = append(problems, "body fields: "+strings.Join(keys, ","))
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get("Troupe-Event") != p.Event || req.Header.Get("Troupe-Delivery") != p.ID {
		problems = append(problems, fmt.Sprintf("request %s %v", req.Method, req.Header))
	}
	r.mu.Lock()
	r.tries[p.ID]++
	try := r.tries[p.ID]
	r.problems = append(r.problems, problems...)
	r.mu.Unlock()

	if r.hold != nil && !r.hold(req) {
		return
	}
	status := http.StatusOK
	if r.respond != nil {
		status = r.respond(p, try)
	}
	if status >= 200 && status < 300 {
		r.mu.Lock()
		r.accepted = append(r.accepted, p)
		r.from = append(r.from, req.Header.Get(nodeHeader))
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (r *receiver) url(path string) string { return r.srv.URL + path }

func (r *receiver) snapshot() (accepted []Payload, tries map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Helper()
	for _, p := range r.problems {
		r.t.Errorf("receiver: %s", p)
	}
	r.problems = nil
	return slices.Clone(r.accepted), func() map[string]int {
		m := make(map[string]int, len(r.tries))
		for k, v := range r.tries {
			m[k] = v
		}
		return m
	}()
}

// run starts d and returns the function that stops it and checks it
// stopped cleanly.
func run(t testing.TB, d *Deliverer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(poll.Timeout):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newDeliverer(t testing.TB, cfg Config) *Deliverer {
	t.Helper()
	if cfg.DefaultSecret == nil {
		cfg.DefaultSecret = defaultSecret
	}
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	cfg.Logger = quietLogger()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The backoffs of the tests on a manual clock: a wake armed this close is a
// backoff, not the next poll nor an attempt's stall (an hour away).
const (
	manualInitialBackoff = time.Second
	manualMaxBackoff     = 4 * time.Second
	manualFar            = time.Hour
)

// newManualDeliverer returns a Deliverer on clk, with the backoffs above,
// and points recv's signature checks at clk.
func newManualDeliverer(t *testing.T, clk *clock.Manual, recv *receiver, cfg Config) *Deliverer {
	t.Helper()
	cfg.Clock = clk
	cfg.InitialBackoff, cfg.MaxBackoff = manualInitialBackoff, manualMaxBackoff
	cfg.PollInterval, cfg.StallAfter = manualFar, manualFar
	recv.now = clk.Now
	return newDeliverer(t, cfg)
}

// nextBackoff waits until the Deliverer has armed a backoff on clk, or
// done holds, and returns the backoff's wait; 0 when done holds.
func nextBackoff(t *testing.T, clk *clock.Manual, what string, done func() bool) time.Duration {
	t.Helper()
	var wait time.Duration
	poll.Until(t, what, func() bool {
		if done() {
			wait = 0
			return true
		}
		at, ok := clk.Next()
		wait = at.Sub(clk.Now())
		return ok && wait <= manualMaxBackoff
	})
	return wait
}

// passBackoffs lets the Deliverer's backoffs pass on clk, one at a time,
// until done holds.
func passBackoffs(t *testing.T, clk *clock.Manual, what string, done func() bool) {
	t.Helper()
	for {
		wait := nextBackoff(t, clk, what, done)
		if wait == 0 {
			return
		}
		clk.Advance(wait)
	}
}

// enqueue queues the deliveries of one event the way a room actor does:
// in a store batch, then Notify.
func enqueue(t testing.TB, s interface {
	Apply(context.Context, persistence.Writes) error
}, d *Deliverer, e Event, room *recordpb.Webhook, global ...Destination) []*recordpb.WebhookEvent {
	t.Helper()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	evs, err := Deliveries(e, room, global)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(context.Background(), persistence.Writes{Events: evs}); err != nil {
		t.Fatal(err)
	}
	if d != nil {
		d.Notify()
	}
	return evs
}

func ids(ps []Payload) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestDeliverSigned(t *testing.T) {
	s := openStore(t, t.TempDir())
	roomSecret := newReceiver(t, []byte("room-secret"), nil)
	serverSecret := newReceiver(t, defaultSecret, nil)
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true})
	run(t, d)

	hook := &recordpb.Webhook{Endpoint: roomSecret.url("/room"), Events: []string{"*"}, Secret: "room-secret"}
	global := Destination{Endpoint: serverSecret.url("/ops"), Events: []string{"participant-*", "room-created"}}
	var want []string
	for _, e := range []Event{
		{Name: "room-created", RoomID: "r1"},
		{Name: "session-started", RoomID: "r1", SessionID: "ses_1"},
		{Name: "participant-joined", RoomID: "r1", SessionID: "ses_1", Data: map[string]string{"identity": "alice"}},
	} {
		for _, ev := range enqueue(t, s, d, e, hook, global) {
			want = append(want, ev.Id)
		}
	}
	poll.Until(t, "5 deliveries", func() bool {
		a, _ := roomSecret.snapshot()
		b, _ := serverSecret.snapshot()
		return len(a) == 3 && len(b) == 2
	})
	a, _ := roomSecret.snapshot()
	b, _ := serverSecret.snapshot()
	if got := append(ids(a), ids(b)...); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if a[0].Event != "room-created" || a[0].SessionID != nil || a[2].Event != "participant-joined" ||
		*a[2].SessionID != "ses_1" || string(a[2].Data) != `{"identity":"alice"}` || a[2].RoomID != "r1" {
		t.Fatalf("payloads %+v", a)
	}
	poll.Until(t, "an empty outbox", func() bool { p, _ := s.WebhookBacklog(); return p == 0 })
}

// TestRetryInOrder: a receiver failing the first 3 tries of every delivery
// still gets each event once, in order.
func TestRetryInOrder(t *testing.T) {
	s := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, func(_ Payload, try int) int {
		if try <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	reg := prometheus.NewRegistry()
	clk := clock.NewManual(time.Now())
	d := newManualDeliverer(t, clk, recv, Config{Store: s, AllowPrivate: true, Registerer: reg})
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	var want []string
	for i := range 6 {
		evs := enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "r1", Time: clk.Now(), Data: map[string]int{"n": i}}, hook)
		want = append(want, evs[0].Id)
	}
	run(t, d)
	passBackoffs(t, clk, "6 deliveries", func() bool { a, _ := recv.snapshot(); return len(a) == 6 })
	accepted, tries := recv.snapshot()
	if got := ids(accepted); !slices.Equal(got, want) {
		t.Fatalf("accepted %v, want in order %v", got, want)
	}
	for _, id := range want {
		if tries[id] != 4 {
			t.Errorf("delivery %s tried %d times, want 4", id, tries[id])
		}
	}
	if got := testutil.ToFloat64(d.metrics.retried); got != 18 {
		t.Errorf("retries = %v, want 18", got)
	}
	if got := testutil.ToFloat64(d.metrics.delivered); got != 6 {
		t.Errorf("delivered = %v, want 6", got)
	}
}

// TestQueueAndClaimGauges: a node alone holds the claim of every room with
// pending deliveries, and counts its queues, until they are delivered.
func TestQueueAndClaimGauges(t *testing.T) {
	s := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, func(_ Payload, try int) int {
		if try == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	clk := clock.NewManual(time.Now())
	d := newManualDeliverer(t, clk, recv, Config{Store: s, AllowPrivate: true})
	hooks := []*recordpb.Webhook{
		{Endpoint: recv.url("/a"), Events: []string{"*"}},
		{Endpoint: recv.url("/b"), Events: []string{"*"}},
	}
	enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1", Time: clk.Now()}, hooks[0])
	enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1", Time: clk.Now()}, hooks[1])
	enqueue(t, s, d, Event{Name: "room-created", RoomID: "r2", Time: clk.Now()}, hooks[0])
	run(t, d)
	poll.Until(t, "a first attempt of every queue", func() bool { _, tries := recv.snapshot(); return len(tries) == 3 })
	if q, c := testutil.ToFloat64(d.metrics.queues), testutil.ToFloat64(d.metrics.claimed); q != 3 || c != 2 {
		t.Errorf("while retrying: %v queues, %v rooms claimed; want 3, 2", q, c)
	}
	passBackoffs(t, clk, "3 deliveries", func() bool { a, _ := recv.snapshot(); return len(a) == 3 })
	poll.Until(t, "no queue and no claim left", func() bool {
		return testutil.ToFloat64(d.metrics.queues) == 0 && testutil.ToFloat64(d.metrics.claimed) == 0
	})
	if lost := testutil.ToFloat64(d.metrics.claimsLost); lost != 0 {
		t.Errorf("%v claims lost on a node alone", lost)
	}
}

// TestBackoffOnClock: a failing delivery is retried after a backoff that
// doubles from InitialBackoff up to MaxBackoff, jittered to between half
// and all of it, timed by the Deliverer's clock.
func TestBackoffOnClock(t *testing.T) {
	s := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, func(Payload, int) int { return http.StatusServiceUnavailable })
	clk := clock.NewManual(time.Now())
	d := newManualDeliverer(t, clk, recv, Config{Store: s, AllowPrivate: true})
	ev := enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1", Time: clk.Now()},
		&recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}})[0]
	run(t, d)
	tries := func() int { _, tries := recv.snapshot(); return tries[ev.Id] }
	poll.Until(t, "the first attempt", func() bool { return tries() == 1 })
	for n, full := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		wait := nextBackoff(t, clk, "a backoff", func() bool { return false })
		if wait < full/2 || wait > full {
			t.Fatalf("backoff after failure %d is %v, want between %v and %v", n+1, wait, full/2, full)
		}
		clk.Advance(wait)
		poll.Until(t, "the next attempt", func() bool { return tries() == n+2 })
	}
}

// TestManyRoomsNoneLost: 1,000 events over 10 rooms, queued concurrently
// by one writer per room, none lost and each room's in order.
func TestManyRoomsNoneLost(t *testing.T) {
	s := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, func(p Payload, try int) int {
		// Every 7th delivery fails once, to mix retries in.
		if try == 1 && p.ID[len(p.ID)-1]%7 == 0 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true})
	run(t, d)
	const rooms, perRoom = 10, 100
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	want := make([][]string, rooms)
	start := time.Now()
	var wg sync.WaitGroup
	for r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perRoom {
				evs, err := Deliveries(Event{Name: "participant-joined", Time: time.Now(), RoomID: fmt.Sprintf("room_%d", r)}, hook, nil)
				if err == nil {
					err = s.Apply(context.Background(), persistence.Writes{Events: evs})
				}
				if err != nil {
					t.Error(err)
					return
				}
				want[r] = append(want[r], evs[0].Id)
				d.Notify()
			}
		}()
	}
	wg.Wait()
	poll.Until(t, "1000 deliveries", func() bool { a, _ := recv.snapshot(); return len(a) >= rooms*perRoom })
	elapsed := time.Since(start)
	accepted, _ := recv.snapshot()
	got := make([][]string, rooms)
	seen := map[string]bool{}
	for _, p := range accepted {
		if seen[p.ID] {
			continue // at least once: a duplicate is allowed, and ignored
		}
		seen[p.ID] = true
		var r int
		fmt.Sscanf(p.RoomID, "room_%d", &r)
		got[r] = append(got[r], p.ID)
	}
	for r := range rooms {
		if !slices.Equal(got[r], want[r]) {
			t.Errorf("room_%d: got %d events (in order: %v), want %d", r, len(got[r]), slices.Equal(got[r], want[r][:len(got[r])]), len(want[r]))
		}
	}
	t.Logf("1000 events over 10 rooms delivered in %v", elapsed.Round(time.Millisecond))
}

// TestRestartDeliversPending: deliveries queued and partly delivered before
// a stop are delivered after a restart over the same store, with the same
// delivery ids.
func TestRestartDeliversPending(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	var accepting atomic.Int32
	accepting.Store(5)
	recv := newReceiver(t, defaultSecret, func(Payload, int) int {
		if accepting.Add(-1) >= 0 {
			return http.StatusOK
		}
		return http.StatusInternalServerError
	})
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	var want []string
	for i := range 20 {
		evs := enqueue(t, s, nil, Event{Name: "participant-left", RoomID: "r1", Data: map[string]int{"n": i}}, hook)
		want = append(want, evs[0].Id)
	}
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true, InitialBackoff: time.Hour})
	stop := run(t, d)
	poll.Until(t, "5 deliveries and a failure", func() bool {
		_, tries := recv.snapshot()
		return len(tries) == 6
	})
	stop()
	s.Close()

	// A new process: a new store over the same directory, a new deliverer.
	accepting.Store(1 << 20)
	s = openStore(t, dir)
	if pending, _ := s.WebhookBacklog(); pending != 15 {
		t.Fatalf("pending after restart = %d, want 15", pending)
	}
	d = newDeliverer(t, Config{Store: s, AllowPrivate: true})
	run(t, d)
	poll.Until(t, "20 deliveries", func() bool { a, _ := recv.snapshot(); return len(a) == 20 })
	accepted, tries := recv.snapshot()
	if got := ids(accepted); !slices.Equal(got, want) {
		t.Fatalf("accepted %v, want %v", got, want)
	}
	if tries[want[5]] != 2 {
		t.Errorf("the delivery that failed before the restart was tried %d times, want 2 with one id", tries[want[5]])
	}
	poll.Until(t, "an empty outbox", func() bool { p, _ := s.WebhookBacklog(); return p == 0 })
}

// TestDeadEndpointIsolated: an endpoint that never answers holds up neither
// another room nor another endpoint of the same room.
func TestDeadEndpointIsolated(t *testing.T) {
	s := openStore(t, t.TempDir())
	release := make(chan struct{})
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer dead.Close()
	defer close(release)
	live := newReceiver(t, defaultSecret, nil)
	d := newDeliverer(t, Config{Store: s, AllowPrivate: true, RequestTimeout: time.Minute, MaxPerEndpoint: 2, MaxConcurrent: 4})
	run(t, d)

	deadHook := &recordpb.Webhook{Endpoint: dead.URL + "/h", Events: []string{"*"}}
	liveHook := &recordpb.Webhook{Endpoint: live.url("/h"), Events: []string{"*"}}
	global := Destination{Endpoint: dead.URL + "/global", Events: []string{"*"}}
	// Many rooms hooked to the dead endpoint: more than MaxConcurrent.
	for i := range 8 {
		enqueue(t, s, d, Event{Name: "room-created", RoomID: fmt.Sprintf("dead_%d", i)}, deadHook)
	}
	for range 10 {
		enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "live_room"}, liveHook)
		// The same room also reports to the dead global endpoint.
		enqueue(t, s, d, Event{Name: "participant-joined", RoomID: "mixed_room"}, liveHook, global)
	}
	// Held up behind the dead endpoint, they would wait for its request
	// timeout of a minute: longer than poll.Until waits.
	poll.Until(t, "20 live deliveries", func() bool { a, _ := live.snapshot(); return len(a) == 20 })
}

// TestMaxAgeFailed: a delivery still failing at its max age is kept as
// failed, counted, and does not block the next one.
func TestMaxAgeFailed(t *testing.T) {
	s := openStore(t, t.TempDir())
	clk := clock.NewManual(time.Now())
	recv := newReceiver(t, defaultSecret, func(p Payload, _ int) int {
		if p.Event == "room-created" {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	reg := prometheus.NewRegistry()
	d := newManualDeliverer(t, clk, recv, Config{Store: s, AllowPrivate: true, Registerer: reg, MaxAge: time.Hour})
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	doomed := enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1", Time: clk.Now()}, hook)[0]
	next := enqueue(t, s, d, Event{Name: "room-updated", RoomID: "r1", Time: clk.Now()}, hook)[0]
	run(t, d)
	tried := func(n int) func() bool {
		return func() bool { _, tries := recv.snapshot(); return tries[doomed.Id] >= n }
	}
	passBackoffs(t, clk, "3 attempts", tried(3))
	if a, _ := recv.snapshot(); len(a) != 0 {
		t.Fatalf("a later event was delivered before the failing one: %v", ids(a))
	}
	nextBackoff(t, clk, "the third attempt's backoff", func() bool { return false })
	clk.Advance(2 * time.Hour)
	poll.Until(t, "the next event", func() bool { a, _ := recv.snapshot(); return len(a) == 1 && a[0].ID == next.Id })

	f := onlyFailed(t, s)
	_, tries := recv.snapshot()
	if f.Id != doomed.Id || f.LastStatus != 500 || int(f.Attempts) != tries[doomed.Id] || f.FailedAt == nil || !strings.Contains(f.LastError, "500") {
		t.Fatalf("failed record %v (tried %d times)", f, tries[doomed.Id])
	}
	if got := testutil.ToFloat64(d.metrics.failed); got != 1 {
		t.Errorf("troupe_webhook_deliveries_total{result=failed} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "troupe_webhook_failed"); err != nil || n != 1 {
		t.Fatalf("troupe_webhook_failed series = %d, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP troupe_webhook_failed Failed webhook deliveries kept (GET /api/v1/webhooks/deliveries?status=failed).
# TYPE troupe_webhook_failed gauge
troupe_webhook_failed 1
`), "troupe_webhook_failed"); err != nil {
		t.Error(err)
	}
}

// onlyFailed waits for s to hold one failed delivery, and returns it.
func onlyFailed(t *testing.T, s *persistence.Store) *recordpb.WebhookEvent {
	t.Helper()
	poll.Until(t, "a failed record", func() bool { _, f := s.WebhookBacklog(); return f == 1 })
	page, err := s.ListWebhookDeliveries(context.Background(), persistence.DeliveryQuery{Status: persistence.DeliveryFailed})
	if err != nil || len(page.Deliveries) != 1 {
		t.Fatalf("failed deliveries = %v, %v", page.Deliveries, err)
	}
	return page.Deliveries[0]
}

// TestLoopbackRefused: without AllowPrivate, a delivery to 127.0.0.1 is
// refused at dial time, never reaches the receiver, and fails at once.
func TestLoopbackRefused(t *testing.T) {
	s := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, nil)
	d := newDeliverer(t, Config{Store: s})
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	ev := enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1"}, hook)[0]
	run(t, d)
	f := onlyFailed(t, s)
	if f.Id != ev.Id || f.Attempts != 1 || !strings.Contains(f.LastError, ErrForbiddenAddress.Error()) {
		t.Fatalf("failed record %v", f)
	}
	if _, tries := recv.snapshot(); len(tries) != 0 {
		t.Fatalf("the receiver was reached: %v", tries)
	}
}

func TestRunTwice(t *testing.T) {
	s := openStore(t, t.TempDir())
	d := newDeliverer(t, Config{Store: s})
	run(t, d)
	poll.Until(t, "running", d.running.Load)
	if err := d.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

func TestNewConfig(t *testing.T) {
	s := openStore(t, t.TempDir())
	for name, cfg := range map[string]Config{
		"no store":         {DefaultSecret: defaultSecret},
		"no secret":        {Store: s},
		"negative max age": {Store: s, DefaultSecret: defaultSecret, MaxAge: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Store: s, DefaultSecret: defaultSecret, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Store: s, DefaultSecret: defaultSecret, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
}

// A delivery to a host that does not resolve keeps, as its last error,
// what is wrong with the endpoint and not the resolver's address: failed
// deliveries are listed by the API.
func TestUnresolvableEndpointRecorded(t *testing.T) {
	s := openStore(t, t.TempDir())
	dns := webhooktest.NewDNS(t, nil)
	d := newDeliverer(t, Config{Store: s, Resolver: dns.Resolver(), MaxAge: time.Nanosecond})
	hook := &recordpb.Webhook{Endpoint: "https://gone.troupe.test/h", Events: []string{"*"}}
	ev := enqueue(t, s, d, Event{Name: "room-created", RoomID: "r1"}, hook)[0]
	run(t, d)
	if f := onlyFailed(t, s); f.Id != ev.Id || f.LastError != "webhook: endpoint host gone.troupe.test does not resolve" {
		t.Fatalf("failed record %v", f)
	}
}

// hookedStore is the real store with a hook after each OutboxHead read and
// a signal after each OutboxHeads read, to order a worker's read against
// the scheduler's.
type hookedStore struct {
	*persistence.Store
	afterHead  func(*recordpb.WebhookEvent, error)
	headsReads chan struct{}
}

func (s *hookedStore) OutboxHead(ctx context.Context, roomID, endpoint string) (*recordpb.WebhookEvent, error) {
	e, err := s.Store.OutboxHead(ctx, roomID, endpoint)
	s.afterHead(e, err)
	return e, err
}

func (s *hookedStore) OutboxHeads(ctx context.Context) ([]*recordpb.WebhookEvent, error) {
	heads, err := s.Store.OutboxHeads(ctx)
	select {
	case s.headsReads <- struct{}{}:
	default:
	}
	return heads, err
}

// TestQueuedWhileBusyNotLost: a delivery queued and announced while the
// worker of its queue is between reading an empty queue and reporting it
// is delivered at once, not at the next poll.
func TestQueuedWhileBusyNotLost(t *testing.T) {
	inner := openStore(t, t.TempDir())
	recv := newReceiver(t, defaultSecret, nil)
	hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
	s := &hookedStore{Store: inner, headsReads: make(chan struct{}, 1)}
	var d *Deliverer
	var second []*recordpb.WebhookEvent
	var once sync.Once
	s.afterHead = func(_ *recordpb.WebhookEvent, err error) {
		if !errors.Is(err, persistence.ErrNotFound) {
			return
		}
		once.Do(func() {
			// The worker found its queue empty; queue the next delivery
			// and wait for the scheduler to read the outbox for it
			// before the worker reports.
			<-s.headsReads // the read that started the first delivery
			second = enqueue(t, inner, d, Event{Name: "room-updated", RoomID: "r1"}, hook)
			select {
			case <-s.headsReads:
			case <-time.After(poll.Timeout):
				t.Error("the outbox was not read after Notify")
			}
		})
	}
	d = newDeliverer(t, Config{Store: s, AllowPrivate: true, PollInterval: time.Hour})
	first := enqueue(t, inner, nil, Event{Name: "room-created", RoomID: "r1"}, hook)
	run(t, d)
	poll.Until(t, "both deliveries", func() bool { a, _ := recv.snapshot(); return len(a) == 2 })
	if a, _ := recv.snapshot(); a[0].ID != first[0].Id || a[1].ID != second[0].Id {
		t.Fatalf("delivered %v", ids(a))
	}
}
