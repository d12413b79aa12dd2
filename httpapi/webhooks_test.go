package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/webhook"
	"github.com/troupe-media/troupe/actors/webhook/webhooktest"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

// webhookStack is a stack whose room actors wake a real deliverer. The
// deliverer does not run until start is called, so that pending
// deliveries can be seen first.
type webhookStack struct {
	*stack
	deliverer *webhook.Deliverer
}

func newWebhookStack(t *testing.T, media bool, cfg webhook.Config) *webhookStack {
	t.Helper()
	var d atomic.Pointer[webhook.Deliverer]
	notify := func(c *actors.Config) {
		c.OnEvents = func() {
			if d := d.Load(); d != nil {
				d.Notify()
			}
		}
	}
	s := buildStack(t, nil, notify, media)
	cfg.Store = s.store
	cfg.DefaultSecret = []byte("the API secret")
	cfg.AllowPrivate = true // the receivers are on loopback
	cfg.Logger = slog.New(slog.DiscardHandler)
	dl, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Store(dl)
	return &webhookStack{stack: s, deliverer: dl}
}

// start runs the deliverer until the test ends; it stops before the
// stack's store closes (cleanups run last registered first).
func (w *webhookStack) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.deliverer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("deliverer: %v", err)
		}
	})
}

// deliveries lists GET /webhooks/deliveries with query.
func (s *stack) deliveries(t testing.TB, query string) (list []map[string]any, total int) {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/webhooks/deliveries"+query, "")
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(strings.ToLower(string(r.body)), "secret") {
		t.Fatalf("a delivery listing shows a secret: %s", r.body)
	}
	m := r.json(t)
	if keys := sortedKeys(m); !slices.Equal(keys, []string{"deliveries", "limit", "offset", "total"}) {
		t.Fatalf("list keys %v", keys)
	}
	want := []string{"attempts", "created_at", "endpoint", "event", "failed_at", "id", "last_attempt_at",
		"last_error", "last_status", "room_id", "session_id", "status"}
	for _, d := range m["deliveries"].([]any) {
		d := d.(map[string]any)
		if got := sortedKeys(d); !slices.Equal(got, want) {
			t.Fatalf("delivery keys = %v, want %v", got, want)
		}
		list = append(list, d)
	}
	return list, int(m["total"].(float64))
}

// TestWebhookDeliveries: a room's events wait in the outbox (pending),
// then an endpoint that always fails makes them failed records; both lists
// show them without secrets.
func TestWebhookDeliveries(t *testing.T) {
	checkLeaks(t)
	var hits atomic.Int32
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
	}))
	t.Cleanup(dead.Close)
	s := newWebhookStack(t, false, webhook.Config{
		MaxAge: 300 * time.Millisecond, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
	})
	endpoint := dead.URL + "/hooks"
	s.createRoom(t, `{"id":"hooked","name":"Hooked","webhook":{"endpoint":"`+endpoint+`","events":["room-*"],"secret":"room secret"}}`)
	s.createRoom(t, `{"id":"quiet","name":"Quiet","webhook":{"endpoint":"`+endpoint+`","events":["session-*"]}}`)
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/hooked", `{"name":"Renamed"}`), http.StatusOK)

	if list, total := s.deliveries(t, ""); len(list) != 0 || total != 0 {
		t.Fatalf("failed before any attempt: %v (total %d)", list, total)
	}
	pending, total := s.deliveries(t, "?status=pending")
	if total != 2 || len(pending) != 2 {
		t.Fatalf("pending = %v (total %d), want room-created and room-updated", pending, total)
	}
	var ids []string
	for i, event := range []string{"room-created", "room-updated"} {
		d := pending[i]
		for k, want := range map[string]any{
			"event": event, "status": "pending", "room_id": "hooked", "session_id": nil, "endpoint": endpoint,
			"attempts": nil, "last_attempt_at": nil, "last_status": nil, "last_error": nil, "failed_at": nil,
		} {
			if d[k] != want {
				t.Errorf("pending %d: %s = %v, want %v", i, k, d[k], want)
			}
		}
		checkUTC(t, "created_at", d["created_at"])
		ids = append(ids, d["id"].(string))
	}
	if page, total := s.deliveries(t, "?status=pending&limit=1&offset=1"); len(page) != 1 || page[0]["id"] != ids[1] || total != 2 {
		t.Errorf("second pending page = %v total %d", page, total)
	}

	s.start(t)
	poll.Until(t, "two failed deliveries", func() bool { _, n := s.deliveries(t, "?status=failed"); return n == 2 })
	failed, _ := s.deliveries(t, "?status=failed")
	var failedIDs []string
	var last time.Time
	for i, d := range failed {
		failedIDs = append(failedIDs, d["id"].(string))
		if d["status"] != "failed" || d["last_status"] != 500.0 || d["endpoint"] != endpoint || d["room_id"] != "hooked" {
			t.Errorf("failed %d = %v", i, d)
		}
		if n, ok := d["attempts"].(float64); !ok || n < 1 {
			t.Errorf("failed %d: attempts %v", i, d["attempts"])
		}
		if msg, ok := d["last_error"].(string); !ok || msg == "" {
			t.Errorf("failed %d: last_error %v", i, d["last_error"])
		}
		checkUTC(t, "last_attempt_at", d["last_attempt_at"])
		at := checkUTC(t, "failed_at", d["failed_at"])
		if i > 0 && at.After(last) {
			t.Errorf("failed deliveries are not newest first: %v after %v", at, last)
		}
		last = at
	}
	slices.Sort(failedIDs)
	slices.Sort(ids)
	if !slices.Equal(failedIDs, ids) {
		t.Errorf("failed ids %v, pending ids were %v", failedIDs, ids)
	}
	if list, total := s.deliveries(t, "?status=pending"); len(list) != 0 || total != 0 {
		t.Errorf("still pending: %v", list)
	}
	if page, total := s.deliveries(t, "?limit=1&offset=1"); len(page) != 1 || page[0]["id"] != failed[1]["id"] || total != 2 {
		t.Errorf("second failed page = %v total %d", page, total)
	}
	if hits.Load() < 2 {
		t.Errorf("the endpoint was tried %d times", hits.Load())
	}

	s.refuseListQueries(t, "/api/v1/webhooks/deliveries",
		badQuery{"status=done", codeValidationFailed, "status", 422},
		badQuery{"status=", codeValidationFailed, "status", 422})
}

// receivedEvent is a delivery as the README's receiver handed it over.
type receivedEvent struct {
	delivery, event string
	payload         webhook.Payload
}

// TestWebhookSessionEvents: a session's events reach a receiver built from
// the README's code, signed with the room's secret, in order, and carrying
// the session's id.
func TestWebhookSessionEvents(t *testing.T) {
	checkLeaks(t)
	const secret = "a room secret"
	var mu sync.Mutex
	var got []receivedEvent
	var bad atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled := false
		troupeWebhook([]byte(secret), func(delivery string, body []byte) error {
			var p webhook.Payload
			if err := json.Unmarshal(body, &p); err != nil {
				return err
			}
			handled = true
			mu.Lock()
			got = append(got, receivedEvent{delivery: delivery, event: r.Header.Get("Troupe-Event"), payload: p})
			mu.Unlock()
			return nil
		})(w, r)
		if !handled {
			bad.Add(1)
		}
	}))
	t.Cleanup(recv.Close)

	s := newWebhookStack(t, true, webhook.Config{PollInterval: 50 * time.Millisecond})
	s.start(t)
	s.createRoom(t, `{"id":"live","name":"Live","webhook":{"endpoint":"`+recv.URL+`","events":["session-*","participant-*"],"secret":"`+secret+`"}}`)
	c := s.dialWS(t, "alice", s.joinToken(t, "live", "alice", auth.RolePublisher))
	pid := c.waitMsg("joined", nil)["participant"].(map[string]any)["id"].(string)
	id := s.activeSession(t, "live")
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/sessions/"+id+"/end", ""), http.StatusOK)
	c.waitMsg("left", nil)
	c.close()

	want := []string{"session-started", "participant-joined", "participant-left", "session-ended"}
	poll.Until(t, "four events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	mu.Lock()
	events := slices.Clone(got)
	mu.Unlock()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d deliveries failed verification", n)
	}
	if len(events) != len(want) {
		t.Fatalf("got %d events, want %v", len(events), want)
	}
	for i, e := range events {
		p := e.payload
		if p.Event != want[i] || e.event != p.Event || e.delivery != p.ID || p.RoomID != "live" || p.SessionID == nil || *p.SessionID != id {
			t.Errorf("event %d = %+v (header %s, delivery %s), want %s of session %s", i, p, e.event, e.delivery, want[i], id)
		}
	}
	var joined struct {
		ParticipantID string `json:"participant_id"`
	}
	if err := json.Unmarshal(events[1].payload.Data, &joined); err != nil || joined.ParticipantID != pid {
		t.Errorf("participant-joined data %s (%v), want participant %s", events[1].payload.Data, err, pid)
	}
	var ended struct {
		EndReason string `json:"end_reason"`
		Duration  *int64 `json:"duration"`
	}
	if err := json.Unmarshal(events[3].payload.Data, &ended); err != nil || ended.EndReason != "ended-via-api" || ended.Duration == nil {
		t.Errorf("session-ended data %s (%v)", events[3].payload.Data, err)
	}

	// The events and the API describe the same stay and the same session
	// end alike: same names, same values.
	var left map[string]any
	if err := json.Unmarshal(events[2].payload.Data, &left); err != nil {
		t.Fatal(err)
	}
	stays := s.sessionParticipants(t, id)
	if len(stays) != 1 {
		t.Fatalf("session history %v", stays)
	}
	for _, k := range []string{"participant_id", "identity", "name", "role"} {
		if left[k] != stays[0][k] {
			t.Errorf("participant-left %s = %v, the session history says %v", k, left[k], stays[0][k])
		}
	}
	sameInstant(t, "participant-left joined_at", left["joined_at"], stays[0]["joined_at"])
	sameInstant(t, "participant-left left_at", left["left_at"], stays[0]["left_at"])
	var end map[string]any
	if err := json.Unmarshal(events[3].payload.Data, &end); err != nil {
		t.Fatal(err)
	}
	api := s.getSession(t, id)
	if end["duration"] != api["duration"] || end["end_reason"] != api["end_reason"] {
		t.Errorf("session-ended %v, the API's session %v", end, api)
	}
	sameInstant(t, "session-ended end_time", end["end_time"], api["end_time"])
	poll.Until(t, "an empty outbox", func() bool { _, n := s.deliveries(t, "?status=pending"); return n == 0 })
	if _, n := s.deliveries(t, "?status=failed"); n != 0 {
		t.Errorf("%d failed deliveries", n)
	}
}

// The receiver refuses what it cannot verify, and Troupe's retry of a
// refused delivery is not mistaken for success.
func TestWebhookReceiverRefusesBadSignatures(t *testing.T) {
	secret := []byte("s")
	var handled int
	h := troupeWebhook(secret, func(string, []byte) error { handled++; return nil })
	body := []byte(`{"id":"whd_1"}`)
	now := time.Now()
	for _, tc := range []struct {
		name, sig string
		status    int
	}{
		{"good", webhook.Sign(secret, now, body), http.StatusNoContent},
		{"other secret", webhook.Sign([]byte("t"), now, body), http.StatusUnauthorized},
		{"old", webhook.Sign(secret, now.Add(-time.Hour), body), http.StatusUnauthorized},
		{"none", "", http.StatusUnauthorized},
		{"no time", "v1=" + strings.Repeat("0", 64), http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
		r.Header.Set("Troupe-Signature", tc.sig)
		w := httptest.NewRecorder()
		h(w, r)
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		}
	}
	if handled != 1 {
		t.Errorf("handled %d deliveries, want 1", handled)
	}
	failing := troupeWebhook(secret, func(string, []byte) error { return errors.New("database down") })
	r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(string(body)))
	r.Header.Set("Troupe-Signature", webhook.Sign(secret, now, body))
	w := httptest.NewRecorder()
	failing(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("a handler error answered %d: Troupe would not retry", w.Code)
	}
}

// With the private-address rule on (the server's default), a room webhook
// to loopback or a private network is a 422 on webhook.endpoint.
func TestPrivateWebhookEndpointRefused(t *testing.T) {
	s := buildStack(t, nil, func(c *actors.Config) {
		c.CheckWebhook = func(ctx context.Context, endpoint string) error { return webhook.CheckEndpoint(ctx, endpoint, false) }
	}, false)
	s.createRoom(t, `{"id":"open","name":"Open"}`)
	for _, ep := range []string{"http://127.0.0.1:8080/hook", "https://10.1.2.3/hook", "http://[::1]/hook", "http://169.254.169.254/latest"} {
		s.refuseWebhook(t, ep)
	}
	r := s.do(t, http.MethodPatch, "/api/v1/rooms/open", `{"webhook":{"endpoint":"https://93.184.215.14/hook","events":["*"]}}`)
	mustStatus(t, r, http.StatusOK)
}

// A room webhook whose host does not resolve is a 422 that says so, and
// never names the server's resolver.
func TestUnresolvableWebhookEndpoint(t *testing.T) {
	dns := webhooktest.NewDNS(t, nil)
	guard := webhook.Guard{Resolver: dns.Resolver()}
	s := buildStack(t, nil, func(c *actors.Config) { c.CheckWebhook = guard.CheckEndpoint }, false)
	s.createRoom(t, `{"id":"open","name":"Open"}`)
	for _, r := range s.refuseWebhook(t, "https://gone.troupe.test/hook") {
		msg, _ := r.json(t)["error"].(map[string]any)["message"].(string)
		if !strings.Contains(msg, "endpoint host gone.troupe.test does not resolve") || strings.Contains(msg, "lookup") ||
			strings.Contains(msg, ":53") {
			t.Errorf("message %q", msg)
		}
	}
}

// refuseWebhook checks that a room create and an update of room "open"
// (its only room), each setting a webhook to endpoint, are both a 422 on
// webhook.endpoint that creates nothing. It returns the two replies.
func (s *stack) refuseWebhook(t *testing.T, endpoint string) []response {
	t.Helper()
	wh := `"webhook":{"endpoint":"` + endpoint + `","events":["*"]}`
	var out []response
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/rooms", `{"name":"x",` + wh + `}`},
		{http.MethodPatch, "/api/v1/rooms/open", `{` + wh + `}`},
	} {
		r := s.do(t, req.method, req.path, req.body)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorCode(t) != codeValidationFailed || r.errorField(t) != "webhook.endpoint" {
			t.Errorf("%s %s with %s: %s", req.method, req.path, endpoint, r.body)
		}
		out = append(out, r)
	}
	if n := s.total(t, ""); n != 1 {
		t.Errorf("%d rooms after a refused create with %s", n, endpoint)
	}
	return out
}

// sameInstant fails unless a and b are RFC 3339 times of the same instant
// (an event may name it in another zone).
func sameInstant(t *testing.T, what string, a, b any) {
	t.Helper()
	as, _ := a.(string)
	bs, _ := b.(string)
	at, aerr := time.Parse(time.RFC3339Nano, as)
	bt, berr := time.Parse(time.RFC3339Nano, bs)
	if aerr != nil || berr != nil || !at.Equal(bt) {
		t.Errorf("%s: %v and %v are not the same instant", what, a, b)
	}
}
