package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// Churn cycles: a few by default, so that `go test ./...` stays quick;
// TROUPE_SOAK=1 runs soakCycles, and TROUPE_CHURN_CYCLES any number.
const (
	shortChurnCycles = 4
	soakChurnCycles  = 200
)

// minHeapCycles is the fewest cycles whose heap figures are compared: in
// fewer, what the runtime keeps once used outweighs what a cycle could
// leak.
const minHeapCycles = 50

// Margins over the baseline once the server is quiet again: goroutines
// and descriptors that come and go with the test's own HTTP client (idle
// keep-alive connections, their readers) rather than with the server's
// state. A leak of one per cycle crosses them within the short run.
const (
	churnGoroutineMargin = 12
	churnFDMargin        = 8
)

func churnCycles(t *testing.T) int {
	t.Helper()
	if v := os.Getenv("TROUPE_CHURN_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 2 {
			t.Fatalf("TROUPE_CHURN_CYCLES=%q: want a number of cycles, 2 or more", v)
		}
		return n
	}
	if os.Getenv("TROUPE_SOAK") == "1" {
		return soakChurnCycles
	}
	return shortChurnCycles
}

// TestChurn drives cycles of people coming and going through one server
// (the real API, room actors, media engine and Pebble) and checks that,
// once the last of them has gone, the server holds what it held before the
// first: goroutines, file descriptors, the gauges an operator watches, the
// API's own tables, and a heap that does not grow with the cycles.
//
// Each cycle creates a room that records (the create retried with its
// Idempotency-Key), and then: a publisher joins over signaling and sends
// audio and video; a socket opened without a token drops before its join
// message; a second member joins (every other cycle by join message),
// receives them, publishes a track of its own (a renegotiation of the
// first) and raises its hand; a recording starts; a WHIP publisher and a WHEP viewer come; a member
// publishes and drops its socket and peer with no leave; a member offers
// and goes before ICE ever connects; every other cycle a WHEP viewer whose
// ICE never connects just vanishes; the recording stops and is deleted;
// the WHIP and WHEP clients DELETE their sessions or vanish (alternately);
// and the room is left to its empty timeout, ended, or deleted with its
// members in it.
func TestChurn(t *testing.T) {
	checkLeaks(t)
	cycles := churnCycles(t)
	h := newChurnHarness(t)

	// The first cycle fills what lives as long as the server (pools, the
	// UDP mux's readers, the client's keep-alive connections): the
	// baseline is taken after it.
	h.cycle(t, 0)
	h.waitQuiet(t, "after the warm-up cycle", nil)
	base := h.measure()
	ignoreBase := goleak.IgnoreCurrent()
	t.Logf("baseline: %s", base)

	half := cycles / 2
	var mid churnFigures
	for i := 1; i <= cycles; i++ {
		h.cycle(t, i)
		if i == half {
			h.waitQuiet(t, fmt.Sprintf("after %d cycles", i), &base)
			mid = h.measure()
			t.Logf("after %d cycles: %s", i, mid)
		}
	}
	h.waitQuiet(t, fmt.Sprintf("after %d cycles", cycles), &base)
	h.waitGoroutines(t, base, ignoreBase)
	end := h.measure()
	t.Logf("after %d cycles: %s", cycles, end)
	// The heap of a server back at rest differs by what the runtime, pion
	// and the actor system keep once used (pools; protoactor's registry of
	// processes, 32768 small maps that each take memory the first time a
	// process id falls in them), not by what the
	// cycles did: the second half of the cycles must not grow it by more
	// than the first half grew it, plus slack for what settles late. A few
	// cycles, or the race detector's accounting, tell nothing: the figures
	// are only logged then.
	if cycles < minHeapCycles || raceEnabled {
		return
	}
	const slack = 4 << 20
	firstHalf := max(int64(mid.heap)-int64(base.heap), 0)
	if grew := int64(end.heap) - int64(mid.heap); grew > firstHalf+slack {
		t.Errorf("the heap in use grew by %d KiB over cycles %d..%d, after %d KiB over the first %d: it grows with the churn",
			grew>>10, half+1, cycles, firstHalf>>10, half)
	}
}

// churnHarness is the server under churn and what the cycles share.
type churnHarness struct {
	s        *stack
	actorReg *prometheus.Registry
	gather   prometheus.Gatherers
	api      *webrtc.API
	log      *slog.Logger
	// open closes what the running cycle opened: a cycle that fails
	// leaves its clients here for the test's cleanup. Each close may run
	// again after the cycle's own.
	open []func()
}

// opened registers close for the test's cleanup, should the cycle fail.
func (h *churnHarness) opened(close func()) { h.open = append(h.open, close) }

func newChurnHarness(t *testing.T) *churnHarness {
	t.Helper()
	dir := t.TempDir()
	h := &churnHarness{actorReg: prometheus.NewRegistry(), log: slog.New(slog.DiscardHandler)}
	h.s = buildStack(t, nil, func(c *actors.Config) {
		c.Recording = actors.RecordingConfig{Dir: dir}
		c.Registerer = h.actorReg
		// Idle rooms leave memory soon, so that the room actors' count
		// comes back to its baseline within the quiet period.
		c.PassivateAfter = 500 * time.Millisecond
	}, true)
	h.gather = prometheus.Gatherers{h.s.reg, h.actorReg}
	h.api = clientAPI(t)
	t.Cleanup(func() {
		for _, close := range h.open {
			close()
		}
	})
	return h
}

// churnFigures are what a quiet server holds.
type churnFigures struct {
	goroutines, fds int
	heap            uint64 // bytes in use after a collection
}

func (f churnFigures) String() string {
	return fmt.Sprintf("%d goroutines, %d open files, %d KiB heap in use", f.goroutines, f.fds, f.heap>>10)
}

func (h *churnHarness) measure() churnFigures {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return churnFigures{goroutines: runtime.NumGoroutine(), fds: openFiles(), heap: ms.HeapInuse}
}

// openFiles counts this process's open file descriptors; -1 where
// /proc/self/fd does not exist.
func openFiles() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// quietGauges are the gauges that read 0 once nobody is connected and
// every room has gone idle.
var quietGauges = []string{
	"troupe_participants",
	"troupe_room_actors",
	"troupe_rooms_active",
	"troupe_rtc_tracks",
	"troupe_rtc_subscribers",
	"troupe_http_upgraded_connections",
}

// waitQuiet waits until the server holds nobody: every gauge of
// quietGauges at 0, the API's tables of live sockets, sessions, pending
// joins and keys in flight empty and, given a baseline, open files back
// within a margin of it.
func (h *churnHarness) waitQuiet(t *testing.T, when string, base *churnFigures) {
	t.Helper()
	var last string
	defer func() {
		if last != "" {
			t.Logf("the server still held: %s", last)
		}
	}()
	// Clients that vanished are removed when their connection times out
	// (pion's ICE failure, the room's connect deadline): well within this
	// bound, which only bounds a failure.
	poll.Within(t, 2*time.Minute, "a quiet server "+when, func() bool {
		last = h.busy(t, base)
		return last == ""
	})
}

// busy says what the server still holds, or "" when it holds nothing.
func (h *churnHarness) busy(t *testing.T, base *churnFigures) string {
	var held []string
	for _, name := range quietGauges {
		if v := promtest.Value(t, h.gather, name); v != 0 {
			held = append(held, fmt.Sprintf("%s %v", name, v))
		}
	}
	api := h.s.api
	api.live.mu.Lock()
	conns, sessions := len(api.live.conns), len(api.live.whip)
	api.live.mu.Unlock()
	api.pending.mu.Lock()
	pending, pendingAddrs := api.pending.total, len(api.pending.byAddr)
	api.pending.mu.Unlock()
	api.idem.mu.Lock()
	inflight := len(api.idem.inflight)
	api.idem.mu.Unlock()
	for _, c := range []struct {
		what string
		n    int
	}{{"signaling sockets", conns}, {"WHIP/WHEP sessions", sessions}, {"pending joins", pending},
		{"pending join addresses", pendingAddrs}, {"idempotency keys in flight", inflight}} {
		if c.n != 0 {
			held = append(held, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if base != nil && base.fds >= 0 {
		if n := openFiles(); n > base.fds+churnFDMargin {
			held = append(held, fmt.Sprintf("%d open files (baseline %d)", n, base.fds))
		}
	}
	return strings.Join(held, ", ")
}

// waitGoroutines waits until the goroutines are back within a margin of
// the baseline; if they never are, it fails the test with the stacks of
// those started since.
func (h *churnHarness) waitGoroutines(t *testing.T, base churnFigures, ignoreBase goleak.Option) {
	t.Helper()
	ok := false
	defer func() {
		if !ok {
			t.Logf("goroutines started since the baseline: %v", goleak.Find(ignoreBase, leaktest.IgnoreActorThrottle()))
		}
	}()
	poll.Until(t, fmt.Sprintf("goroutines back within %d of the baseline's %d", churnGoroutineMargin, base.goroutines), func() bool {
		return runtime.NumGoroutine() <= base.goroutines+churnGoroutineMargin
	})
	ok = true
}

// cycle runs one cycle of churn in its own room (see TestChurn). Every
// client it starts is closed before it returns.
func (h *churnHarness) cycle(t *testing.T, i int) {
	t.Helper()
	s := h.s
	room := fmt.Sprintf("churn-%d", i)
	body := `{"id":"` + room + `","name":"Churn","config":{"recording_enabled":true,"empty_timeout":0}}`
	create := func() response { return s.do(t, http.MethodPost, "/api/v1/rooms", body, idemKey(room)) }
	mustStatus(t, create(), http.StatusCreated)
	if r := create(); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("the create retried: %d, replayed %q", r.status, r.header.Get("Idempotent-Replayed"))
	}
	defer func() {
		if !t.Failed() {
			h.open = nil // all closed
		}
	}()

	pub := h.signalingPublisher(t, room, "pub")
	h.socketDroppedBeforeJoin(t)
	sub := h.subscriber(t, room, "sub", i%2 == 1)
	sub.waitMedia(t)
	h.renegotiate(t, room, sub)
	sub.raiseHand(t, pub)
	rec := s.startRecording(t, room, `{}`)

	whip := h.whipPublisher(t, room, "encoder")
	whep := h.whepViewer(t, room, "viewer")
	h.abruptMember(t, room, "abrupt")
	h.neverConnects(t, room, "unreachable")
	if i%2 == 1 {
		h.whepNeverConnects(t, room, "lost-viewer")
	}

	s.stopRecording(t, rec)
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/recordings/"+rec, ""), http.StatusNoContent)

	whip.leave(t, i%2 == 0)
	whep.leave(t, i%2 == 1)

	switch i % 3 {
	case 0: // everyone leaves; the session ends at once (empty_timeout 0)
		sub.close()
		pub.close()
	case 1: // ended with its members in it
		mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/"+room+"/end", ""), http.StatusOK)
		pub.waitRemoved(t)
		sub.waitRemoved(t)
	case 2: // deleted with its members in it
		mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/"+room, ""), http.StatusNoContent)
		pub.waitRemoved(t)
		sub.waitRemoved(t)
	}
}

// churnMember is a signaling client of one cycle, with the media it
// publishes, if any.
type churnMember struct {
	*client.Client
	name   string
	media  *publisher
	tracks kindReceivers
	// hands counts the hands messages that list a raised hand.
	hands atomic.Int32
}

// dial joins room as identity, with the token in the URL or, if
// byMessage, in a join message on a socket opened without one.
func (h *churnHarness) dial(t *testing.T, room, identity string, byMessage bool, m *churnMember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		URL: h.s.srv.URL, Token: h.s.joinToken(t, room, identity, auth.RolePublisher), API: h.api,
		Logger: h.log, OnTrack: m.tracks.onTrack, JoinMessage: byMessage,
		OnMessage: func(b []byte) {
			if bytes.Contains(b, []byte(`"type":"hands"`)) && bytes.Contains(b, []byte(`"raised_at"`)) {
				m.hands.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatalf("%s joins %s: %v", identity, room, err)
	}
	m.Client, m.name = c, identity
	h.opened(m.close)
}

// signalingPublisher joins room and publishes audio and video until it
// is closed.
func (h *churnHarness) signalingPublisher(t *testing.T, room, identity string) *churnMember {
	t.Helper()
	m := &churnMember{media: newPublisher(t)}
	h.dial(t, room, identity, false, m)
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	senders, err := m.Publish(ctx, m.media.video.Track, m.media.audio.Track)
	if err != nil {
		m.close()
		t.Fatalf("%s publishes: %v", identity, err)
	}
	m.media.serveKeyframes(m.media.video, senders[0])
	m.media.serveKeyframes(m.media.audio, senders[1])
	m.media.run(t)
	return m
}

// subscriber joins room, where someone publishes; see dial for
// byMessage.
func (h *churnHarness) subscriber(t *testing.T, room, identity string, byMessage bool) *churnMember {
	t.Helper()
	m := &churnMember{}
	h.dial(t, room, identity, byMessage, m)
	return m
}

// raiseHand raises m's hand and waits until other hears of it; the hand
// goes down with m.
func (m *churnMember) raiseHand(t *testing.T, other *churnMember) {
	t.Helper()
	if err := m.Send(map[string]any{"type": "hand", "raised": true}); err != nil {
		t.Fatalf("%s raises its hand: %v", m.name, err)
	}
	poll.Until(t, other.name+" told of "+m.name+"'s hand", func() bool { return other.hands.Load() > 0 })
}

// socketDroppedBeforeJoin opens a signaling socket without a token, which
// the server counts among those waiting for their join message, and drops
// it before sending one.
func (h *churnHarness) socketDroppedBeforeJoin(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, h.s.wsURL("/rtc"), nil)
	if err != nil {
		t.Fatalf("a socket without a token: %v", err)
	}
	_ = ws.CloseNow()
}

// waitMedia waits for packets of video and audio.
func (m *churnMember) waitMedia(t *testing.T) {
	t.Helper()
	for _, kind := range []string{"video", "audio"} {
		poll.Until(t, m.name+"'s "+kind+" packets", func() bool {
			r := m.tracks.last(kind)
			return r != nil && r.Stats().Packets > 0
		})
	}
}

// renegotiate has m publish an audio track of its own, which the server
// offers to the room's other members, and waits until the room lists it.
func (h *churnHarness) renegotiate(t *testing.T, room string, m *churnMember) {
	t.Helper()
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", m.name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if _, err := m.Publish(ctx, track); err != nil {
		t.Fatalf("%s publishes: %v", m.name, err)
	}
	// The server lists a track once its first packets have come.
	audio := &rtctest.Sender{Track: track, PayloadSize: 80, TimestampStep: 960}
	poll.Until(t, m.name+"'s track listed", func() bool {
		if err := audio.WriteNext(); err != nil {
			t.Fatalf("%s sends: %v", m.name, err)
		}
		for _, p := range h.s.participants(t, room) {
			if p["id"] == m.ParticipantID() {
				return len(p["tracks"].([]any)) == 1
			}
		}
		return false
	})
}

// close leaves, closes the peer and stops the media.
func (m *churnMember) close() {
	if m.media != nil {
		m.media.halt()
	}
	_ = m.Close()
	if m.media != nil {
		m.media.wait()
	}
}

// waitRemoved waits for the server to end m's socket (the room ended or
// was deleted), then closes m.
func (m *churnMember) waitRemoved(t *testing.T) {
	t.Helper()
	poll.Until(t, m.name+" removed", func() bool {
		select {
		case <-m.Done():
			return true
		default:
			return false
		}
	})
	m.close()
}

// churnWHIP is a WHIP or WHEP client of one cycle.
type churnWHIP struct {
	s     *stack
	pc    *webrtc.PeerConnection
	media *publisher // nil for a viewer
	loc   string
	token string
}

// leave DELETEs the session, or, unless del, just closes the peer as a
// client that vanishes does.
func (w *churnWHIP) leave(t *testing.T, del bool) {
	t.Helper()
	if del {
		mustStatus(t, w.s.do(t, http.MethodDelete, w.loc, "", bearer(w.token)), http.StatusOK)
	}
	w.close()
}

func (w *churnWHIP) close() {
	if w.media != nil {
		w.media.halt()
	}
	_ = w.pc.Close()
	if w.media != nil {
		w.media.wait()
	}
}

// offerWHIP posts pc's gathered offer to path and applies the answer.
func (h *churnHarness) offerWHIP(t *testing.T, w *churnWHIP, path string) {
	t.Helper()
	r := h.s.whipPost(t, path, w.token, "application/sdp", gatheredOffer(t, w.pc))
	if r.status != http.StatusCreated {
		w.close()
		t.Fatalf("%s: status %d: %s", path, r.status, r.body)
	}
	w.loc = r.header.Get("Location")
	if err := w.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		w.close()
		t.Fatal(err)
	}
}

// whipPublisher publishes audio and video into room through WHIP and
// waits until the room lists both tracks.
func (h *churnHarness) whipPublisher(t *testing.T, room, identity string) *churnWHIP {
	t.Helper()
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	w := &churnWHIP{s: h.s, pc: pc, media: newPublisher(t), token: h.s.joinToken(t, room, identity, auth.RolePublisher)}
	h.opened(w.close)
	w.media.attach(t, pc)
	h.offerWHIP(t, w, "/whip/"+room)
	w.media.run(t)
	poll.Until(t, "the WHIP tracks listed", func() bool {
		for _, p := range h.s.participants(t, room) {
			if strings.HasSuffix(w.loc, "/"+p["id"].(string)) {
				return len(p["tracks"].([]any)) == 2
			}
		}
		return false
	})
	return w
}

// recvPeer is a new peer that receives a video and an audio track, and
// counts their packets in got.
func (h *churnHarness) recvPeer(t *testing.T, got *kindReceivers) *webrtc.PeerConnection {
	t.Helper()
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			t.Fatal(err)
		}
	}
	if got != nil {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { got.onTrack(tr) })
	}
	return pc
}

// whepViewer views room through WHEP and waits for packets of both kinds.
func (h *churnHarness) whepViewer(t *testing.T, room, identity string) *churnWHIP {
	t.Helper()
	var got kindReceivers
	w := &churnWHIP{s: h.s, pc: h.recvPeer(t, &got), token: h.s.joinToken(t, room, identity, auth.RoleSubscriber)}
	h.opened(w.close)
	h.offerWHIP(t, w, "/whep/"+room)
	for _, kind := range []string{"video", "audio"} {
		poll.Until(t, "the WHEP viewer's "+kind+" packets", func() bool {
			r := got.last(kind)
			return r != nil && r.Stats().Packets > 0
		})
	}
	return w
}

// whepNeverConnects posts a WHEP offer with no candidate, never applies the
// answer, and vanishes: the server's connection never comes up, and the
// room removes the viewer after its connect deadline.
func (h *churnHarness) whepNeverConnects(t *testing.T, room, identity string) {
	t.Helper()
	pc := h.recvPeer(t, nil)
	defer pc.Close()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The offer goes as created, before gathering: it has no candidate.
	r := h.s.whipPost(t, "/whep/"+room, h.s.joinToken(t, room, identity, auth.RoleSubscriber), "application/sdp", offer.SDP)
	mustStatus(t, r, http.StatusCreated)
}

// rawMember is a signaling client without bench/client, for the ways of
// leaving a real client does not take: its socket and peer are the
// test's to drop.
type rawMember struct {
	ws       *websocket.Conn
	pc       *webrtc.PeerConnection
	answered chan struct{} // the server's answer came
	done     chan struct{} // the reader ended
}

// joinRaw opens a signaling socket as identity and reads up to joined; a
// reader then, if apply, applies the server's answer and candidates to pc,
// until the socket ends.
func (h *churnHarness) joinRaw(t *testing.T, room, identity string, pc *webrtc.PeerConnection, apply bool) *rawMember {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	token := h.s.joinToken(t, room, identity, auth.RolePublisher)
	ws, _, err := websocket.Dial(ctx, h.s.wsURL("/rtc?token="+token), nil)
	if err != nil {
		_ = pc.Close()
		t.Fatalf("%s dials: %v", identity, err)
	}
	m := &rawMember{ws: ws, pc: pc, answered: make(chan struct{}), done: make(chan struct{})}
	go m.read(apply)
	return m
}

func (m *rawMember) read(apply bool) {
	defer close(m.done)
	for {
		_, b, err := m.ws.Read(context.Background())
		if err != nil {
			return
		}
		var msg struct {
			Type      string                   `json:"type"`
			SDP       string                   `json:"sdp"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
		}
		if json.Unmarshal(b, &msg) != nil {
			continue
		}
		switch {
		case msg.Type == "answer":
			select {
			case <-m.answered: // one offer, one answer
				continue
			default:
			}
			if apply {
				_ = m.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: msg.SDP})
			}
			close(m.answered)
		case msg.Type == "candidate" && apply && msg.Candidate != nil && msg.Candidate.Candidate != "":
			_ = m.pc.AddICECandidate(*msg.Candidate)
		}
	}
}

// offer sends sdp as the member's offer.
func (m *rawMember) offer(t *testing.T, sdp string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	sendJSON(ctx, t, m.ws, map[string]any{"type": "offer", "sdp": sdp})
}

// drop closes the socket with no close frame and no leave, and the peer,
// and waits for the reader.
func (m *rawMember) drop() {
	_ = m.ws.CloseNow()
	<-m.done
	_ = m.pc.Close()
}

// abruptMember publishes audio and video, and once its media flows, drops
// its socket and peer at once, as a browser tab that crashes.
func (h *churnHarness) abruptMember(t *testing.T, room, identity string) {
	t.Helper()
	pc, err := h.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	media := newPublisher(t)
	media.attach(t, pc)
	m := h.joinRaw(t, room, identity, pc, true)
	defer func() {
		media.halt()
		m.drop()
		media.wait()
	}()
	m.offer(t, gatheredOffer(t, pc))
	media.run(t)
	poll.Until(t, identity+"'s tracks listed", func() bool {
		for _, p := range h.s.participants(t, room) {
			if p["identity"] == identity {
				return len(p["tracks"].([]any)) == 2
			}
		}
		return false
	})
}

// neverConnects joins, offers with no candidate and takes none of the
// server's, so that ICE never connects, and leaves by closing its socket
// once answered.
func (h *churnHarness) neverConnects(t *testing.T, room, identity string) {
	t.Helper()
	pc := h.recvPeer(t, nil)
	m := h.joinRaw(t, room, identity, pc, false)
	defer m.drop()
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		t.Fatal(err)
	}
	m.offer(t, offer.SDP)
	// The answer is never applied: the server's candidates stay unknown.
	poll.Until(t, identity+" answered", func() bool {
		select {
		case <-m.answered:
			return true
		default:
			return false
		}
	})
	if err := m.ws.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Logf("%s closes its socket: %v", identity, err)
	}
}
