package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/leaktest"
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

// wsClient is a bench/client participant that also logs every server
// message, for the tests to wait on, and reads each track it receives.
type wsClient struct {
	*client.Client
	t    testing.TB
	name string

	mu   sync.Mutex // guards msgs
	msgs []map[string]any

	tracks kindReceivers
}

// kindReceivers receives a client's tracks and keeps the receiver of the
// last track of each kind.
type kindReceivers struct {
	mu     sync.Mutex // guards byKind
	byKind map[string]*rtctest.Receiver
}

// onTrack is a client's OnTrack: it receives tr until tr ends.
func (k *kindReceivers) onTrack(tr *webrtc.TrackRemote) {
	r := rtctest.NewReceiver(tr)
	k.mu.Lock()
	if k.byKind == nil {
		k.byKind = map[string]*rtctest.Receiver{}
	}
	k.byKind[tr.Kind().String()] = r
	k.mu.Unlock()
	r.Run()
}

// last is the receiver of the last track of kind; nil before one came.
func (k *kindReceivers) last(kind string) *rtctest.Receiver {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.byKind[kind]
}

// dialWS joins with the token in the URL; it fails the test unless the
// server says joined.
func (s *stack) dialWS(t testing.TB, name, token string) *wsClient {
	t.Helper()
	return s.dialWSWith(t, name, token, clientAPI(t))
}

// dialWSWith is dialWS with the client's own pion API.
func (s *stack) dialWSWith(t testing.TB, name, token string, api *webrtc.API) *wsClient {
	t.Helper()
	c := &wsClient{t: t, name: name}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	cl, err := client.Dial(ctx, client.Config{
		URL: s.srv.URL, Token: token, API: api,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnMessage: c.record,
		OnTrack:   c.tracks.onTrack,
	})
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	c.Client = cl
	t.Cleanup(c.close)
	return c
}

func (c *wsClient) record(b []byte) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Errorf("%s: server sent non-JSON %q", c.name, b)
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *wsClient) close() { _ = c.Close() }

func (c *wsClient) send(v any) {
	if err := c.Send(v); err != nil {
		c.t.Errorf("%s: send: %v", c.name, err)
	}
}

// waitMsg waits for the first message of type typ that match accepts
// (nil: any).
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

// messages returns the messages of type typ received so far, in order.
func (c *wsClient) messages(typ string) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, m := range c.msgs {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
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
	poll.Closed(c.t, c.name+": the server to close the socket", c.Done())
	return closeStatus(c.Err())
}

// closeStatus is the close code and reason of a socket that ended with
// err, or -1 and err if it ended with no close frame.
func closeStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, fmt.Sprint(err)
}

// receiver waits for the track of kind to arrive and returns its reader.
func (c *wsClient) receiver(kind string) *rtctest.Receiver {
	c.t.Helper()
	var r *rtctest.Receiver
	poll.Until(c.t, c.name+": a "+kind+" track", func() bool {
		r = c.tracks.last(kind)
		return r != nil
	})
	return r
}

// checkIntact fails the test if r saw a damaged or reordered packet.
func checkIntact(t testing.TB, what string, r *rtctest.Receiver) {
	t.Helper()
	if st := r.Stats(); st.Corrupt > 0 || st.OutOfOrder > 0 {
		t.Errorf("%s: %d packets damaged, %d out of order", what, st.Corrupt, st.OutOfOrder)
	}
}

// publisher sends synthetic VP8 every 4 ms and Opus every 20 ms, and a
// keyframe whenever the server asks for one.
type publisher struct {
	video, audio *rtctest.Sender
	stop         chan struct{}
	wg           sync.WaitGroup
}

func newPublisher(t testing.TB) *publisher {
	t.Helper()
	video, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", "pub")
	if err != nil {
		t.Fatal(err)
	}
	return &publisher{
		video: &rtctest.Sender{Track: video, PayloadSize: 202, TimestampStep: 3000},
		audio: &rtctest.Sender{Track: audio, PayloadSize: 80, TimestampStep: 960},
		stop:  make(chan struct{}),
	}
}

// attach adds the tracks to pc as send-only transceivers.
func (p *publisher) attach(t testing.TB, pc *webrtc.PeerConnection) {
	t.Helper()
	for _, s := range []*rtctest.Sender{p.video, p.audio} {
		tc, err := pc.AddTransceiverFromTrack(s.Track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		p.serveKeyframes(s, tc.Sender())
	}
}

// sendOn publishes the tracks through c's own offer and sends until the
// test ends; then it stops, closes c, and waits for its goroutines.
func (p *publisher) sendOn(t testing.TB, c *wsClient) {
	t.Helper()
	p.sendOnAs(t, c, nil)
}

// sendOnAs is sendOn naming the sources of the video and the audio track
// (see client.PublishAs).
func (p *publisher) sendOnAs(t testing.TB, c *wsClient, sources []string) {
	t.Helper()
	t.Cleanup(func() {
		p.halt()
		c.close()
		p.wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	senders, err := c.PublishAs(ctx, sources, p.video.Track, p.audio.Track)
	if err != nil {
		t.Fatal(err)
	}
	p.serveKeyframes(p.video, senders[0])
	p.serveKeyframes(p.audio, senders[1])
	p.run(t)
}

func (p *publisher) serveKeyframes(s *rtctest.Sender, rs *webrtc.RTPSender) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s.ServeKeyframeRequests(rs)
	}()
}

// run sends until halt.
func (p *publisher) run(t testing.TB) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			if err := p.video.WriteNext(); err != nil {
				t.Error(err)
				return
			}
			if i%5 != 0 {
				continue
			}
			if err := p.audio.WriteNext(); err != nil {
				t.Error(err)
				return
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

// participants returns the room's live participants through the REST API.
func (s *stack) participants(t testing.TB, room string) []map[string]any {
	t.Helper()
	r := s.do(t, http.MethodGet, "/api/v1/rooms/"+room+"/participants", "")
	mustStatus(t, r, http.StatusOK)
	// The body is the array itself.
	var out []map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil || out == nil {
		t.Fatalf("participants list %s: %v", r.body, err)
	}
	return out
}

// checkLeaks fails t if, after every cleanup of the test (register it
// first), the test left a goroutine behind: leaktest.Check, by the name
// this package's tests know it.
func checkLeaks(t *testing.T) {
	t.Helper()
	leaktest.Check(t)
}
