package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// clientAPI is a pion peer as a browser would be (default codecs and
// interceptors) with every candidate on IPv4 loopback.
func clientAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// joinToken mints a join token as the REST API would.
func (s *stack) joinToken(t testing.TB, room, identity string, role auth.Role) string {
	t.Helper()
	tok, err := auth.Mint(s.key, auth.JoinClaims(time.Now(), time.Hour, room, identity, identity+" name", role))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *stack) wsURL(path string) string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + path }

// wsClient is a signaling client on a pion peer connection. It answers the
// server's offers, trickles candidates both ways and records every message;
// it is the impolite peer, like the web page.
type wsClient struct {
	t    testing.TB
	name string
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection
	done chan struct{} // the read loop ended

	stopPLI, pliDone chan struct{}
	closeOnce        sync.Once
	// closing is set when the test closes the client: the server then
	// closes its side, and pion closes the peer connection on the DTLS
	// close_notify, under a message the read loop may still be handling.
	closing atomic.Bool

	mu          sync.Mutex // guards the following
	msgs        []map[string]any
	makingOffer bool
	reply       any // what negotiate sends back
	closeErr    error
	tracks      map[string]*receiver // by kind
}

// dialWS opens a signaling socket with the token in the URL; it fails
// the test unless the upgrade succeeds.
func (s *stack) dialWS(t testing.TB, name, token string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, s.wsURL("/rtc?token="+token), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("%s: dial: %v (status %d)", name, err, status)
	}
	return newWSClient(t, name, ws)
}

func newWSClient(t testing.TB, name string, ws *websocket.Conn) *wsClient {
	t.Helper()
	ws.SetReadLimit(1 << 20)
	pc, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, name: name, ws: ws, pc: pc, done: make(chan struct{}), tracks: map[string]*receiver{}}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			c.send(map[string]any{"type": "candidate", "candidate": nil})
			return
		}
		c.send(map[string]any{"type": "candidate", "candidate": cand.ToJSON()})
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := newReceiver(tr.Kind())
		c.mu.Lock()
		c.tracks[tr.Kind().String()] = r
		c.mu.Unlock()
		r.run(tr)
	})
	c.stopPLI = make(chan struct{})
	c.pliDone = make(chan struct{})
	go c.readLoop()
	go c.requestKeyframes()
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) close() {
	c.closing.Store(true)
	_ = c.ws.CloseNow()
	<-c.done
	c.closeOnce.Do(func() { close(c.stopPLI) })
	<-c.pliDone
	_ = c.pc.Close()
}

// requestKeyframes asks for a keyframe every 200 ms while video is
// offered but none has arrived, as a browser's receiver does: the server
// forwards video from a keyframe on.
func (c *wsClient) requestKeyframes() {
	defer close(c.pliDone)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stopPLI:
			return
		case <-tick.C:
		}
		if c.receiver("video").n() > 0 {
			continue
		}
		c.mu.Lock()
		rd := c.pc.RemoteDescription()
		c.mu.Unlock()
		if rd == nil {
			continue
		}
		for _, ssrc := range rtctest.VideoSSRCs(rd.SDP) {
			_ = c.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	}
}

func (c *wsClient) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Error(err)
		return
	}
	c.sendRaw(websocket.MessageText, b)
}

func (c *wsClient) sendRaw(typ websocket.MessageType, b []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.ws.Write(ctx, typ, b) // a closed socket shows in the test's expectations
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Errorf("%s: server sent non-JSON %q", c.name, b)
			continue
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
		reply, err := c.negotiate(m)
		if err != nil && !c.closing.Load() {
			c.t.Errorf("%s: %s: %v", c.name, m["type"], err)
		}
		if reply != nil {
			c.send(reply)
		}
	}
}

// negotiate handles the messages that drive the peer connection, and
// returns the reply to send, if any.
func (c *wsClient) negotiate(m map[string]any) (any, error) {
	err := c.negotiateLocked(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reply
	c.reply = nil
	return r, err
}

func (c *wsClient) negotiateLocked(m map[string]any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m["type"] {
	case "offer":
		if c.makingOffer || c.pc.SignalingState() != webrtc.SignalingStateStable {
			return nil // impolite: the server rolls its offer back
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m["sdp"].(string)}); err != nil {
			return err
		}
		answer, err := c.pc.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := c.pc.SetLocalDescription(answer); err != nil {
			return err
		}
		c.reply = map[string]any{"type": "answer", "sdp": answer.SDP}
	case "answer":
		c.makingOffer = false
		return c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m["sdp"].(string)})
	case "candidate":
		cand, ok := m["candidate"].(map[string]any)
		if !ok {
			return nil // end of candidates
		}
		init := webrtc.ICECandidateInit{Candidate: cand["candidate"].(string)}
		if mid, ok := cand["sdpMid"].(string); ok {
			init.SDPMid = &mid
		}
		if idx, ok := cand["sdpMLineIndex"].(float64); ok {
			i := uint16(idx)
			init.SDPMLineIndex = &i
		}
		return c.pc.AddICECandidate(init)
	}
	return nil
}

// offer sends the client's own offer (after it added tracks).
func (c *wsClient) offer() {
	c.t.Helper()
	c.mu.Lock()
	offer, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(offer)
	}
	c.makingOffer = err == nil
	c.mu.Unlock()
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"type": "offer", "sdp": offer.SDP})
}

// waitMsg waits for the first message of type typ, after the first skip
// of that type, that match accepts (nil: any).
func (c *wsClient) waitMsg(typ string, match func(map[string]any) bool) map[string]any {
	c.t.Helper()
	var found map[string]any
	poll.Until(c.t, c.name+": a "+typ+" message", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, m := range c.msgs {
			if m["type"] == typ && (match == nil || match(m)) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func (c *wsClient) count(typ string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if m["type"] == typ {
			n++
		}
	}
	return n
}

// waitClosed waits for the server to close the socket and returns the
// close status.
func (c *wsClient) waitClosed() (websocket.StatusCode, string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: the server did not close the socket", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ce websocket.CloseError
	if ok := asCloseError(c.closeErr, &ce); ok {
		return ce.Code, ce.Reason
	}
	return -1, fmt.Sprint(c.closeErr)
}

func asCloseError(err error, ce *websocket.CloseError) bool {
	code := websocket.CloseStatus(err)
	if code == -1 {
		return false
	}
	for e := err; e != nil; {
		if x, ok := e.(websocket.CloseError); ok {
			*ce = x
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	ce.Code = code
	return true
}

func (c *wsClient) receiver(kind string) *receiver {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tracks[kind]
}

// publisher sends synthetic VP8 and Opus whose payloads carry a counter,
// and a keyframe whenever the server asks for one.
type publisher struct {
	video, audio *webrtc.TrackLocalStaticRTP
	wantKey      atomic.Bool
	sent         atomic.Uint32 // video counter
	sentAudio    atomic.Uint32
	stop         chan struct{}
	wg           sync.WaitGroup
}

func newPublisher(t testing.TB) *publisher {
	t.Helper()
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "pub")
	if err != nil {
		t.Fatal(err)
	}
	p := &publisher{video: video, audio: audio, stop: make(chan struct{})}
	p.wantKey.Store(true)
	return p
}

// attach adds the tracks to pc as senders, and reads their RTCP for PLIs.
func (p *publisher) attach(t testing.TB, pc *webrtc.PeerConnection, dir webrtc.RTPTransceiverDirection) {
	t.Helper()
	for _, tr := range []*webrtc.TrackLocalStaticRTP{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: dir})
		if err != nil {
			t.Fatal(err)
		}
		sender := tc.Sender()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					switch pkt.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						p.wantKey.Store(true)
					}
				}
			}
		}()
	}
}

// run sends video every 4 ms and audio every 20 ms until halt.
func (p *publisher) run(t testing.TB) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		var vseq, aseq uint16 = 100, 200
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			n := p.sent.Add(1)
			frame := byte(0x01)
			if p.wantKey.Swap(false) {
				frame = 0x00 // VP8 keyframe (P bit clear)
			}
			payload := append([]byte{0x10, frame}, rtctest.CounterPayload(n, 200)...)
			if err := p.video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: vseq, Timestamp: n * 3000, Marker: true}, Payload: payload}); err != nil {
				t.Error(err)
				return
			}
			vseq++
			if i%5 == 0 {
				a := p.sentAudio.Add(1)
				if err := p.audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: a * 960}, Payload: rtctest.CounterPayload(a, 80)}); err != nil {
					t.Error(err)
					return
				}
				aseq++
			}
		}
	}()
}

func (p *publisher) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
}

// wait waits for the goroutines; the peer connection must be closed first
// for the RTCP readers to end.
func (p *publisher) wait() { p.wg.Wait() }

// receiver records the counters of one received track.
type receiver struct {
	offset int // payload bytes before the counter

	mu       sync.Mutex
	counters []uint32
	errs     []string
}

func newReceiver(kind webrtc.RTPCodecType) *receiver {
	r := &receiver{}
	if kind == webrtc.RTPCodecTypeVideo {
		r.offset = 2
	}
	return r
}

func (r *receiver) run(tr *webrtc.TrackRemote) {
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		r.mu.Lock()
		if len(pkt.Payload) < r.offset {
			r.errs = append(r.errs, "short payload")
			r.mu.Unlock()
			continue
		}
		i, ok := rtctest.CheckCounterPayload(pkt.Payload[r.offset:])
		switch {
		case !ok:
			r.errs = append(r.errs, fmt.Sprintf("packet %d: payload damaged", i))
		case len(r.counters) > 0 && i == r.counters[len(r.counters)-1]:
			// a retransmission of the last packet
		case len(r.counters) > 0 && i < r.counters[len(r.counters)-1]:
			r.errs = append(r.errs, fmt.Sprintf("packet %d after %d: out of order", i, r.counters[len(r.counters)-1]))
		default:
			r.counters = append(r.counters, i)
		}
		r.mu.Unlock()
	}
}

func (r *receiver) n() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counters)
}

// window counts the counters received in (from, to], and returns the
// errors seen.
func (r *receiver) window(from, to uint32) (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.counters {
		if c > from && c <= to {
			n++
		}
	}
	return n, append([]string(nil), r.errs...)
}

func (r *receiver) last() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.counters) == 0 {
		return 0
	}
	return r.counters[len(r.counters)-1]
}

// participants returns the room's live participants through the REST API.
func (s *stack) participants(t testing.TB, room string) []map[string]any {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/rooms/"+room+"/participants", "")
	mustStatus(t, r, http.StatusOK)
	var out struct {
		Participants []map[string]any `json:"participants"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil || out.Participants == nil {
		t.Fatalf("participants list %s: %v", r.body, err)
	}
	return out.Participants
}

// checkLeaks verifies, after every cleanup of the test (register it
// first), that the test left no goroutine behind.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// protoactor's dead-letter throttle sleeps out its period (a
		// second) after the actor system has stopped; TestMain's check,
		// at the end, still sees it go.
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
