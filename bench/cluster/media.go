package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// What a Member publishes: one VP8 packet of videoPayload bytes per frame
// at 30 fps and Opus at 50 packets/s, small enough for many rounds of a
// test on a shared machine.
const (
	videoInterval = time.Second / 30
	videoPayload  = 1000
	audioInterval = 20 * time.Millisecond
	audioPayload  = 80
)

// Member is a participant joined through one node with a WebSocket: it
// reads every track the server sends it, may publish, and remembers the
// addresses of every ICE candidate the server gave it.
type Member struct {
	*client.Client
	// Node is the node it joined through.
	Node *Node
	// JoinedAt is when it started to join.
	JoinedAt time.Time

	stopSend context.CancelFunc
	wg       sync.WaitGroup // the senders and their RTCP readers

	mu      sync.Mutex // guards the following
	tracks  map[string]*rtctest.Receiver
	cands   map[string]bool // host addresses of the server's candidates
	badMsgs []string
	senders []*rtctest.Sender
}

// Join mints a join token for room through node n and joins through n.
func (c *Cluster) Join(ctx context.Context, n *Node, room, identity, role string) (*Member, error) {
	token, err := c.JoinToken(ctx, n, room, identity, role)
	if err != nil {
		return nil, err
	}
	api, err := rtctest.ClientAPI()
	if err != nil {
		return nil, err
	}
	m := &Member{Node: n, JoinedAt: time.Now(), tracks: map[string]*rtctest.Receiver{}, cands: map[string]bool{}}
	cl, err := client.Dial(ctx, client.Config{
		URL: n.URL, Token: token, API: api,
		Logger:    slog.New(slog.DiscardHandler),
		OnMessage: m.record,
		OnTrack: func(tr *webrtc.TrackRemote) {
			r := rtctest.NewReceiver(tr)
			m.mu.Lock()
			m.tracks[tr.Kind().String()] = r
			m.mu.Unlock()
			r.Run()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %s joins %s through %s: %w", identity, room, n.ID, err)
	}
	m.Client = cl
	return m, nil
}

// record notes the addresses of the server's candidates, trickled or in
// an SDP.
func (m *Member) record(b []byte) {
	var msg struct {
		Type      string `json:"type"`
		SDP       string `json:"sdp"`
		Candidate *struct {
			Candidate string `json:"candidate"`
		} `json:"candidate"`
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := json.Unmarshal(b, &msg); err != nil {
		m.badMsgs = append(m.badMsgs, string(b))
		return
	}
	if msg.Candidate != nil {
		m.addCandidateLocked(msg.Candidate.Candidate)
	}
	for _, line := range strings.Split(msg.SDP, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok {
			m.addCandidateLocked(c)
		}
	}
}

func (m *Member) addCandidateLocked(cand string) {
	if ip, ok := CandidateIP(cand); ok {
		m.cands[ip] = true
	}
}

// CandidateIP is the address of an ICE candidate attribute
// ("candidate:1 1 udp 2130706431 127.0.0.2 40000 typ host").
func CandidateIP(cand string) (string, bool) {
	f := strings.Fields(cand)
	if len(f) < 8 || !strings.HasPrefix(f[0], "candidate:") {
		return "", false
	}
	return f[4], true
}

// CandidateIPs lists the addresses of the server's candidates so far.
func (m *Member) CandidateIPs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.cands))
	for ip := range m.cands {
		out = append(out, ip)
	}
	return out
}

// BadMessages lists the server messages that were not JSON.
func (m *Member) BadMessages() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.badMsgs...)
}

// Receiver is the reader of the track of kind ("audio", "video") the
// member receives, nil until its first packet.
func (m *Member) Receiver(kind string) *rtctest.Receiver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tracks[kind]
}

// FirstPacket is when the first packet of any track arrived.
func (m *Member) FirstPacket() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var first time.Time
	for _, r := range m.tracks {
		if at := r.Stats().FirstPacketAt; !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// Publish publishes a VP8 and an Opus track and sends on them until Close.
func (m *Member) Publish(ctx context.Context) error {
	id := m.ParticipantID()
	video, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", id)
	if err != nil {
		return err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", id)
	if err != nil {
		return err
	}
	rtp, err := m.Client.Publish(ctx, video, audio)
	if err != nil {
		return fmt.Errorf("cluster: publish through %s: %w", m.Node.ID, err)
	}
	vs := &rtctest.Sender{Track: video, PayloadSize: videoPayload, TimestampStep: 90000 / 30, KeyframeEvery: 30}
	as := &rtctest.Sender{Track: audio, PayloadSize: audioPayload, TimestampStep: 960}
	sendCtx, stop := context.WithCancel(context.Background())
	m.mu.Lock()
	m.stopSend = stop
	m.senders = []*rtctest.Sender{vs, as}
	m.mu.Unlock()
	for i, s := range m.senders {
		interval := videoInterval
		if s == as {
			interval = audioInterval
		}
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			s.ServeKeyframeRequests(rtp[i])
		}()
		go func() {
			defer m.wg.Done()
			// A write error means the peer connection closed: the
			// member's Close, or a node gone.
			_ = s.Run(sendCtx, 0, interval)
		}()
	}
	return nil
}

// Sent is how many packets the member has sent on each published track.
func (m *Member) Sent() (video, audio uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.senders) != 2 {
		return 0, 0
	}
	return m.senders[0].Sent(), m.senders[1].Sent()
}

// Close stops the senders, leaves and closes the peer connection, and
// waits for the member's goroutines.
func (m *Member) Close() error {
	m.mu.Lock()
	stop := m.stopSend
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	err := m.Client.Close()
	m.wg.Wait()
	return err
}
