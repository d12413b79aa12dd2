package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
)

func TestIdempotentCreateReplays(t *testing.T) {
	s := newStack(t, nil)
	body := `{"name":"Once"}`
	first := s.do(t, http.MethodPost, "/api/v1/rooms", body, idemKey("k-1"))
	mustStatus(t, first, http.StatusCreated)
	if first.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("first response marked as replayed")
	}
	id := first.json(t)["id"].(string)
	if actors.RoomID(id) != derivedRoomID(s.key.ID, "k-1") {
		t.Fatalf("id %q is not derived from the key", id)
	}
	// Change the room so that a replay is visibly the stored response.
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/"+id, `{"name":"Renamed"}`), http.StatusOK)

	again := s.do(t, http.MethodPost, "/api/v1/rooms", body, idemKey("k-1"))
	mustStatus(t, again, http.StatusCreated)
	if again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("replay = %v %s, want %s", again.header, again.body, first.body)
	}
	if loc := again.header.Get("Location"); loc == "" || loc != first.header.Get("Location") {
		t.Fatalf("replay's Location %q, first %q", loc, first.header.Get("Location"))
	}
	if !strings.HasPrefix(again.header.Get("Content-Type"), "application/json") {
		t.Fatalf("replay content type %q", again.header.Get("Content-Type"))
	}

	// The same key for another request.
	for _, req := range []struct{ path, body string }{
		{"/api/v1/rooms", `{"name":"Twice"}`},
		{"/api/v1/rooms/" + id + "/end", ""},
	} {
		r := s.do(t, http.MethodPost, req.path, req.body, idemKey("k-1"))
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorCode(t) != codeIdempotencyReused || r.errorField(t) != "Idempotency-Key" {
			t.Fatalf("%s: %s", req.path, r.body)
		}
	}
	// Keys are scoped by API key, keys of other scopes are independent, and
	// a new key makes a new room.
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms", body, idemKey("k-2")), http.StatusCreated)
	if n := s.total(t, ""); n != 2 {
		t.Fatalf("rooms = %d, want 2", n)
	}
}

// Failures are not stored: a retry after a 4xx runs again.
func TestIdempotencyDoesNotStoreFailures(t *testing.T) {
	s := newStack(t, nil)
	r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":""}`, idemKey("retry"))
	mustStatus(t, r, http.StatusUnprocessableEntity)
	r = s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"Fixed"}`, idemKey("retry"))
	mustStatus(t, r, http.StatusCreated)
	if r.json(t)["name"] != "Fixed" {
		t.Fatalf("%s", r.body)
	}
}

func TestIdempotencyKeyValidation(t *testing.T) {
	s := newStack(t, nil)
	for _, k := range []string{"", strings.Repeat("k", 256), "tab\tkey", "é"} {
		r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"x"}`, idemKey(k))
		mustStatus(t, r, http.StatusBadRequest)
		if r.errorCode(t) != codeInvalidIdempotency || r.errorField(t) != "Idempotency-Key" {
			t.Fatalf("key %q: %s", k, r.body)
		}
	}
	mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"x"}`, idemKey(strings.Repeat("k", 255))), http.StatusCreated)
	// Non-POST methods ignore the header.
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/rooms", "", idemKey("")), http.StatusOK)
	if n := s.total(t, ""); n != 1 {
		t.Fatalf("rooms = %d", n)
	}
}

// Duplicates in flight at once create exactly one room and all get the
// first one's response.
func TestIdempotentConcurrentDuplicates(t *testing.T) {
	s := newStack(t, nil)
	const n = 30
	var wg sync.WaitGroup
	bodies := make([]string, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"Concurrent"}`, idemKey("same"))
			statuses[i], bodies[i] = r.status, string(r.body)
		}()
	}
	wg.Wait()
	for i := range n {
		if statuses[i] != http.StatusCreated || bodies[i] != bodies[0] {
			t.Fatalf("response %d = %d %s, want 201 %s", i, statuses[i], bodies[i], bodies[0])
		}
	}
	if got := s.total(t, ""); got != 1 {
		t.Fatalf("rooms = %d, want 1", got)
	}

	// The same with custom ids and with tokens: one result each.
	var tokens sync.Map
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"id":"custom","name":"C"}`, idemKey("custom-key"))
			if r.status != http.StatusCreated {
				t.Errorf("custom %d: %d %s", i, r.status, r.body)
			}
			r = s.do(t, http.MethodPost, "/api/v1/rooms/custom/tokens", `{"identity":"a"}`, idemKey("tok"))
			if r.status == http.StatusOK {
				tokens.Store(string(r.body), true)
			} else if r.status != http.StatusNotFound { // the room may not exist yet
				t.Errorf("token %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	distinct := 0
	tokens.Range(func(any, any) bool { distinct++; return true })
	if distinct != 1 {
		t.Fatalf("%d distinct tokens for one key", distinct)
	}
}

// A room created under a key whose stored response was lost (a crash
// between the create and the store) is found again, never duplicated.
func TestIdempotentCreateAfterLostResponse(t *testing.T) {
	s := newStack(t, nil)
	id := derivedRoomID(s.key.ID, "lost")
	if _, err := s.rooms.Create(context.Background(), id, &actorpb.RoomPatch{Name: proto.String("First try")}); err != nil {
		t.Fatal(err)
	}
	r := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"First try"}`, idemKey("lost"))
	mustStatus(t, r, http.StatusCreated)
	if r.json(t)["id"] != string(id) || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("%v %s", r.header, r.body)
	}
	if n := s.total(t, ""); n != 1 {
		t.Fatalf("rooms = %d, want 1", n)
	}
	// From now on the response is stored and replayed.
	again := s.do(t, http.MethodPost, "/api/v1/rooms", `{"name":"First try"}`, idemKey("lost"))
	if again.status != http.StatusCreated || string(again.body) != string(r.body) {
		t.Fatalf("%d %s", again.status, again.body)
	}
}

func TestDerivedRoomIDs(t *testing.T) {
	seen := map[actors.RoomID]bool{}
	for _, scope := range []string{"A", "B", "A\x00x"} {
		for i := range 100 {
			id := derivedRoomID(scope, fmt.Sprint(i))
			if len(id) != len("room_")+16 || seen[id] {
				t.Fatalf("id %q (dup=%v)", id, seen[id])
			}
			seen[id] = true
		}
	}
	// A retry must land on the room the first request created.
	first := derivedRoomID("A", "1")
	if again := derivedRoomID("A", "1"); again != first {
		t.Fatalf("not deterministic: %q then %q", first, again)
	}
}

// A WHEP POST retried with its Idempotency-Key gets the first answer, its
// Location, ETag and SDP, and makes no second viewer; the same key with
// another offer is refused as on /api/v1, and another identity's key is
// its own. A WHIP POST is kept the same way.
func TestIdempotentWHIPAndWHEP(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"wh","name":"WH"}`)
	pubToken := s.joinToken(t, "wh", "encoder", auth.RolePublisher)
	pc, media, offer := publisherPeer(t)
	post := func(path, token, offer, key string) response {
		return s.do(t, http.MethodPost, path, offer, bearer(token), header{"Content-Type", "application/sdp"}, idemKey(key))
	}
	sameAnswer := func(what string, first, again response) {
		t.Helper()
		mustStatus(t, again, http.StatusCreated)
		for _, h := range []string{"Location", "ETag", "Content-Type"} {
			if again.header.Get(h) == "" || again.header.Get(h) != first.header.Get(h) {
				t.Errorf("%s: the retry's %s %q, the first's %q", what, h, again.header.Get(h), first.header.Get(h))
			}
		}
		if again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
			t.Fatalf("%s: the retry got %v\n%s\nthe first answer was\n%s", what, again.header, again.body, first.body)
		}
	}

	pub := post("/whip/wh", pubToken, offer, "publish-1")
	mustStatus(t, pub, http.StatusCreated)
	sameAnswer("WHIP", pub, post("/whip/wh", pubToken, offer, "publish-1"))
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(pub.body)}); err != nil {
		t.Fatal(err)
	}
	media.run(t)
	poll.Until(t, "the published tracks", func() bool {
		ps := s.participants(t, "wh")
		return len(ps) == 1 && len(ps[0]["tracks"].([]any)) == 2
	})

	viewerToken := s.joinToken(t, "wh", "viewer", auth.RoleSubscriber)
	view := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	viewOffer := gatheredOffer(t, view)
	first := post("/whep/wh?max_quality=360p", viewerToken, viewOffer, "view-1")
	mustStatus(t, first, http.StatusCreated)
	sameAnswer("WHEP", first, post("/whep/wh?max_quality=360p", viewerToken, viewOffer, "view-1"))
	if n := len(s.participants(t, "wh")); n != 2 {
		t.Fatalf("%d participants after a WHEP POST and its retry, want the publisher and one viewer", n)
	}

	// The same key for another request: another offer, or other query
	// settings.
	other := gatheredOffer(t, transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo))
	for _, r := range []response{
		post("/whep/wh?max_quality=360p", viewerToken, other, "view-1"),
		post("/whep/wh", viewerToken, viewOffer, "view-1"),
	} {
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if r.errorCode(t) != codeIdempotencyReused {
			t.Fatalf("a reused key: %s", r.body)
		}
	}
	// Another identity's key is its own: the same key makes its viewer.
	second := post("/whep/wh", s.joinToken(t, "wh", "viewer-2", auth.RoleSubscriber), other, "view-1")
	mustStatus(t, second, http.StatusCreated)
	if second.header.Get("Idempotent-Replayed") != "" || second.header.Get("Location") == first.header.Get("Location") {
		t.Fatalf("another identity's POST: %v", second.header)
	}
	if n := len(s.participants(t, "wh")); n != 3 {
		t.Fatalf("%d participants, want the publisher and two viewers", n)
	}
}

// The token routes outside /api/v1 keep a response by Idempotency-Key too:
// a retried public join gets the first guest's token, not a second guest.
func TestIdempotentPublicToken(t *testing.T) {
	s := newStack(t, nil)
	s.createRoom(t, `{"id":"open","name":"Open","privacy":"public"}`)
	post := func(body, key string) response {
		return s.do(t, http.MethodPost, "/rooms/open/token", body, header{"Authorization", ""}, idemKey(key))
	}
	first := post(`{"name":"Guest"}`, "guest-1")
	mustStatus(t, first, http.StatusOK)
	again := post(`{"name":"Guest"}`, "guest-1")
	mustStatus(t, again, http.StatusOK)
	if again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("the retry got %s, the first %s", again.body, first.body)
	}
	r := post(`{"name":"Someone else"}`, "guest-1")
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if r.errorCode(t) != codeIdempotencyReused {
		t.Fatalf("a reused key: %s", r.body)
	}
	if fresh := post(`{"name":"Guest"}`, "guest-2"); fresh.status != http.StatusOK || string(fresh.body) == string(first.body) {
		t.Fatalf("a new key: %d %s", fresh.status, fresh.body)
	}
}
