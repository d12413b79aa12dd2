package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorstest"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/rtc"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

// stack is the real API over real room actors over a real Pebble store.
type stack struct {
	t      *testing.T
	key    auth.Key
	admin  string
	store  *persistence.Store
	rooms  *actors.Rooms
	api    *Server
	reg    *prometheus.Registry
	srv    *httptest.Server
	client *http.Client
	engine *rtc.Engine // nil unless media is on
}

func newStack(t testing.TB, mod func(*Config)) *stack {
	t.Helper()
	return buildStack(t, mod, nil, false)
}

// newMediaStack is newStack with a media engine on loopback UDP: rooms
// take participants.
func newMediaStack(t testing.TB, mod func(*Config)) *stack {
	t.Helper()
	return buildStack(t, mod, nil, true)
}

// buildStack builds a stack; amod, if not nil, changes the room actors'
// configuration before they start.
func buildStack(t testing.TB, mod func(*Config), amod func(*actors.Config), media bool) *stack {
	t.Helper()
	return serveStack(t, actorstest.Start(t, media, amod), mod)
}

// serveStack builds a stack over the control plane cp.
func serveStack(t testing.TB, cp *actorstest.Stack, mod func(*Config)) *stack {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cp.Metrics != nil {
		reg.MustRegister(cp.Metrics)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Rooms:       cp.Rooms,
		Verifier:    verifier,
		SigningKey:  key,
		Idempotency: actors.NewIdempotency(cp.Store),
		Registry:    reg,
	}
	if mod != nil {
		mod(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	admin, err := auth.Mint(key, auth.AdminClaims(time.Now(), time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	s := &stack{
		key: key, admin: admin, store: cp.Store, rooms: cp.Rooms, api: api, reg: reg, srv: srv,
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		engine: cp.Engine,
	}
	if tt, ok := t.(*testing.T); ok {
		s.t = tt
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
		defer cancel()
		// The order cmd/troupe follows: HTTP, then the sockets it does not
		// wait for, then (in actorstest's cleanup, which runs after this
		// one) the actors and their peer connections.
		srv.Close()
		if err := api.Close(ctx); err != nil {
			t.Errorf("close api: %v", err)
		}
		transport.CloseIdleConnections()
	})
	return s
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// list decodes a body that is a JSON array.
func (r response) list(t testing.TB) []any {
	t.Helper()
	var l []any
	if err := json.Unmarshal(r.body, &l); err != nil || l == nil {
		t.Fatalf("response %d is not a JSON array: %v: %s", r.status, err, r.body)
	}
	return l
}

// errorCode checks the error body's shape and returns its code.
func (r response) errorCode(t testing.TB) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok || len(m) != 1 {
		t.Fatalf("not an error body: %s", r.body)
	}
	if _, ok := e["message"].(string); !ok {
		t.Fatalf("error without message: %s", r.body)
	}
	if _, ok := e["details"].(map[string]any); !ok {
		t.Fatalf("error without details object: %s", r.body)
	}
	code, _ := e["code"].(string)
	return code
}

// isTypeError reports whether r is the 400 invalid_type of field: a value
// of the wrong JSON type.
func (r response) isTypeError(t testing.TB, field string) bool {
	t.Helper()
	return r.status == http.StatusBadRequest && r.errorCode(t) == codeInvalidType && r.errorField(t) == field
}

func (r response) errorField(t testing.TB) string {
	t.Helper()
	d := r.json(t)["error"].(map[string]any)["details"].(map[string]any)
	f, _ := d["field"].(string)
	return f
}

type header struct{ name, value string }

func bearer(tok string) header { return header{"Authorization", "Bearer " + tok} }

func idemKey(k string) header { return header{"Idempotency-Key", k} }

// do sends a request as admin (unless a header overrides Authorization);
// a non-empty body is sent as application/json unless overridden.
func (s *stack) do(t testing.TB, method, path, body string, hs ...header) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.admin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range hs {
		if h.value == "" && h.name != "Idempotency-Key" {
			req.Header.Del(h.name)
			continue
		}
		req.Header.Set(h.name, h.value)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// mustStatus fails unless r has status want.
func mustStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

// listIDs reads the list at path, whose items are under key, checks that
// the list has those and its page's fields and nothing else, and returns
// the items' ids and the page's fields.
func (s *stack) listIDs(t testing.TB, path, key string) (ids []string, total, limit, offset int) {
	t.Helper()
	r := s.do(t, http.MethodGet, path, "")
	mustStatus(t, r, http.StatusOK)
	m := r.json(t)
	want := []string{key, "limit", "offset", "total"}
	slices.Sort(want)
	if keys := sortedKeys(m); !slices.Equal(keys, want) {
		t.Fatalf("list keys %v, want %v", keys, want)
	}
	ids = []string{}
	for _, item := range m[key].([]any) {
		ids = append(ids, item.(map[string]any)["id"].(string))
	}
	return ids, int(m["total"].(float64)), int(m["limit"].(float64)), int(m["offset"].(float64))
}

// pagesTile checks that the list at path, read one item a page from offset
// 0, gives want in order, each page counting len(want) in all: the order is
// stable, and the pages tile the whole list.
func (s *stack) pagesTile(t testing.TB, path, key string, want []string) {
	t.Helper()
	var paged []string
	for off := range want {
		page, total, limit, _ := s.listIDs(t, fmt.Sprintf("%s?limit=1&offset=%d", path, off), key)
		if len(page) != 1 || total != len(want) || limit != 1 {
			t.Fatalf("page %d = %v (total %d, limit %d)", off, page, total, limit)
		}
		paged = append(paged, page...)
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("pages = %v, want %v", paged, want)
	}
}

// badQuery is a list query the API refuses, and the error it answers.
type badQuery struct {
	query, code, field string
	status             int
}

// badPageQueries are the page parameters every list refuses.
var badPageQueries = []badQuery{
	{"limit=0", codeValidationFailed, "limit", 422},
	{"limit=101", codeValidationFailed, "limit", 422},
	{"limit=-1", codeValidationFailed, "limit", 422},
	{"offset=-1", codeValidationFailed, "offset", 422},
	{"limit=ten", codeInvalidQuery, "limit", 400},
	{"limit=", codeInvalidQuery, "limit", 400},
	{"offset=1.5", codeInvalidQuery, "offset", 400},
	{"limit=99999999999999999999", codeInvalidQuery, "limit", 400},
}

// refuseListQueries checks that the list at path answers each of
// badPageQueries and of more with its status, code and field.
func (s *stack) refuseListQueries(t testing.TB, path string, more ...badQuery) {
	t.Helper()
	for _, b := range append(slices.Clone(badPageQueries), more...) {
		r := s.do(t, http.MethodGet, path+"?"+b.query, "")
		mustStatus(t, r, b.status)
		if r.errorCode(t) != b.code || r.errorField(t) != b.field {
			t.Errorf("%s?%s: %s", path, b.query, r.body)
		}
	}
}

// createRoom creates a room and returns its JSON.
func (s *stack) createRoom(t testing.TB, body string) map[string]any {
	t.Helper()
	r := s.do(t, http.MethodPost, "/api/v1/rooms", body)
	mustStatus(t, r, http.StatusCreated)
	return r.json(t)
}

func compactJSON(t testing.TB, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}
