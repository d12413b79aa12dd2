package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// keyframeRetry is how often a client asks again for a keyframe of a video
// track that was offered but has not started, as browsers do.
const keyframeRetry = 200 * time.Millisecond

// Config configures a Client. URL, Token and API are required.
type Config struct {
	// URL is the server's base URL, like http://127.0.0.1:7880.
	URL string
	// Token is a join token for the room.
	Token string
	// API makes the peer connection (rtctest.ClientAPI for loopback).
	API *webrtc.API
	// OnTrack, if set, is called in its own goroutine for every track the
	// server sends, once its first packet has arrived.
	OnTrack func(*webrtc.TrackRemote)
	// OnMessage, if set, is called from the client's reader with every
	// message the server sends, joined first, in order and before the
	// client acts on it. It must not block.
	OnMessage func(msg []byte)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// JoinMessage sends the token in a join message, the first one,
	// instead of in the URL.
	JoinMessage bool
	// VideoSize, when both are set, is the width and height this client
	// shows video at: each video track it receives is asked for that size
	// with track-settings as it starts, as a page sizes its tiles (the
	// server sends a simulcast track's smallest layer that covers it).
	VideoSize [2]int
}

// Client is one participant: a signaling socket and a peer connection.
type Client struct {
	cfg  Config
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection
	log  *slog.Logger
	self string // participant id

	done      chan struct{} // the read loop ended
	stop      chan struct{} // closed by Close
	out       chan []byte   // messages to send, in order; the writer sends them
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu          sync.Mutex // guards the following
	makingOffer bool
	answered    chan struct{} // closed when the answer to our offer arrives
	pending     []webrtc.ICECandidateInit
	started     map[uint32]bool             // video SSRCs whose first packet came
	cameras     map[string]*SimulcastCamera // published, by mid
	err         error                       // why the socket ended
	left        string                      // the reason of the server's left message

	// candMu guards the candidates gathered before the first local
	// description went out: they wait so as not to overtake it. It is not
	// mu, since pion calls OnICECandidate from inside SetLocalDescription.
	candMu   sync.Mutex
	descSent bool
	held     [][]byte
}

// Dial connects, joins and returns once the server said joined.
func Dial(ctx context.Context, cfg Config) (_ *Client, err error) {
	if cfg.URL == "" || cfg.Token == "" || cfg.API == nil {
		return nil, errors.New("client: URL, Token and API are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/") + "/rtc")
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	if !cfg.JoinMessage {
		u.RawQuery = url.Values{"token": {cfg.Token}}.Encode()
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return nil, refusedByHTTP(resp)
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	ws.SetReadLimit(1 << 20)
	if cfg.JoinMessage {
		join, _ := json.Marshal(map[string]string{"type": "join", "token": cfg.Token})
		if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
			ws.CloseNow()
			return nil, fmt.Errorf("client: send join: %w", err)
		}
	}
	pc, err := cfg.API.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("client: peer connection: %w", err)
	}
	c := &Client{
		cfg: cfg, ws: ws, pc: pc, log: cfg.Logger,
		done: make(chan struct{}), stop: make(chan struct{}), out: make(chan []byte, 256),
		started: map[uint32]bool{},
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	// The first message is joined; read it before the loop starts.
	var joined struct {
		Type        string `json:"type"`
		Participant struct {
			ID string `json:"id"`
		} `json:"participant"`
		Code    string `json:"code"`
		Message string `json:"message"`
		// RetryAfterMs: a refusal for now says when to come back.
		RetryAfterMs int `json:"retry_after_ms"`
	}
	if err := c.read(ctx, &joined); err != nil {
		close(c.done)
		return c, fmt.Errorf("client: waiting for joined: %w", err)
	}
	if joined.Type != "joined" || joined.Participant.ID == "" {
		refused := &RefusedError{Code: joined.Code, Detail: fmt.Sprintf("first message %q: %s", joined.Type, joined.Message),
			RetryAfter: time.Duration(max(0, joined.RetryAfterMs)) * time.Millisecond}
		// A refused join message is followed by a close whose code is
		// 4000 + the HTTP status.
		if _, _, err := c.ws.Read(ctx); err != nil {
			if code := int(websocket.CloseStatus(err)); code >= 4000 && code < 5000 {
				refused.Status = code - 4000
			}
		}
		close(c.done)
		return c, refused
	}
	c.self = joined.Participant.ID
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		var v any // null ends the candidates
		if cand != nil {
			v = cand.ToJSON()
		}
		c.sendCandidate(map[string]any{"type": "candidate", "candidate": v})
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.mu.Lock()
		c.started[uint32(tr.SSRC())] = true
		c.mu.Unlock()
		if w, h := cfg.VideoSize[0], cfg.VideoSize[1]; w > 0 && h > 0 && tr.Kind() == webrtc.RTPCodecTypeVideo {
			if err := c.Send(map[string]any{"type": "track-settings", "track_id": tr.ID(), "width": w, "height": h}); err != nil {
				c.log.Debug("track settings", "err", err)
			}
		}
		if cfg.OnTrack != nil {
			cfg.OnTrack(tr)
			return
		}
		drain(tr)
	})
	c.wg.Add(3)
	go c.readLoop()
	go c.writeLoop()
	go c.requestKeyframes()
	return c, nil
}

// ParticipantID is the id the server gave this participant.
func (c *Client) ParticipantID() string { return c.self }

// PeerConnection is the client's peer connection.
func (c *Client) PeerConnection() *webrtc.PeerConnection { return c.pc }

// Done is closed when the signaling socket has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// LeftReason is the reason of the server's left message (docs/signaling.md:
// kicked, room-ended, server-shutdown...), or "" if none came.
func (c *Client) LeftReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left
}

// Err is why the socket ended, once Done is closed.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Publish adds tracks as send-only transceivers, offers them and waits for
// the server's answer. It returns the RTPSenders, whose RTCP (keyframe
// requests) the caller must read.
func (c *Client) Publish(ctx context.Context, tracks ...webrtc.TrackLocal) ([]*webrtc.RTPSender, error) {
	return c.PublishAs(ctx, nil, tracks...)
}

// PublishAs is Publish naming what each track carries: sources[i] is the
// source of tracks[i] ("camera", "screen_share"...; see docs/signaling.md),
// sent in the offer's sources by mid; a track without one (sources
// shorter, or "") is its kind's default.
func (c *Client) PublishAs(ctx context.Context, sources []string, tracks ...webrtc.TrackLocal) ([]*webrtc.RTPSender, error) {
	var tcs []*webrtc.RTPTransceiver
	err := c.offerWith(ctx, func() error {
		for _, t := range tracks {
			tc, err := c.pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return fmt.Errorf("client: add track: %w", err)
			}
			tcs = append(tcs, tc)
		}
		return nil
	}, func(offer map[string]any) {
		named := map[string]string{}
		for i, tc := range tcs {
			if i < len(sources) && sources[i] != "" && tc.Mid() != "" {
				named[tc.Mid()] = sources[i]
			}
		}
		if len(named) > 0 {
			offer["sources"] = named
		}
	})
	if err != nil {
		return nil, err
	}
	senders := make([]*webrtc.RTPSender, len(tcs))
	for i, tc := range tcs {
		senders[i] = tc.Sender()
	}
	return senders, nil
}

// DataChannels are a client's data channels to the server (see
// docs/signaling.md, Data messages).
type DataChannels struct {
	// Reliable is ordered and retransmitted; Lossy unordered, never
	// retransmitted.
	Reliable, Lossy *webrtc.DataChannel
}

// OpenData opens the reliable and the lossy data channel, offers, and
// returns once the server has answered. Set their OnMessage at once:
// messages may come as soon as they open.
func (c *Client) OpenData(ctx context.Context, reliableLabel, lossyLabel string) (*DataChannels, error) {
	var dcs DataChannels
	err := c.offerWith(ctx, func() error {
		var err error
		if dcs.Reliable, err = c.pc.CreateDataChannel(reliableLabel, nil); err != nil {
			return fmt.Errorf("client: data channel: %w", err)
		}
		ordered, none := false, uint16(0)
		if dcs.Lossy, err = c.pc.CreateDataChannel(lossyLabel, &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &none}); err != nil {
			return fmt.Errorf("client: data channel: %w", err)
		}
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return &dcs, nil
}

// offerWith makes change (adding transceivers or channels) and offers it,
// and returns once the server has answered. annotate, if set, adds fields
// to the offer message once the offer is the local description (the mids
// are known).
func (c *Client) offerWith(ctx context.Context, change func() error, annotate func(offer map[string]any)) error {
	c.mu.Lock()
	// A server offer half-applied must be finished first. The transceivers
	// are added only then, under the same lock as the offer: pion pairs a
	// new, unnegotiated transceiver with a matching section of a remote
	// offer, so a server offer applied in between would take our track.
	for c.pc.SignalingState() != webrtc.SignalingStateStable {
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return ErrClosed
		case <-time.After(10 * time.Millisecond):
		}
		c.mu.Lock()
	}
	if err := change(); err != nil {
		c.mu.Unlock()
		return err
	}
	// Impolite peer: with our offer out, the server's offers are ignored
	// until our answer comes.
	offer, err := c.pc.CreateOffer(nil)
	if err == nil {
		err = c.pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("client: offer: %w", err)
	}
	c.makingOffer = true
	answered := make(chan struct{})
	c.answered = answered
	msg := map[string]any{"type": "offer", "sdp": offer.SDP}
	if annotate != nil {
		annotate(msg)
	}
	c.sendDescription(msg)
	c.mu.Unlock()
	select {
	case <-answered:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return fmt.Errorf("%w: %v", ErrClosed, c.Err())
	}
}

// Close leaves the room and closes the socket and the peer connection; it
// waits for the client's goroutines (not for OnTrack's, which end as their
// tracks do).
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.stop)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"leave"}`))
		cancel()
		_ = c.ws.Close(websocket.StatusNormalClosure, "bye")
		<-c.done
		err = c.pc.Close()
		c.wg.Wait()
	})
	return err
}

func (c *Client) read(ctx context.Context, v any) error {
	_, b, err := c.ws.Read(ctx)
	if err != nil {
		return err
	}
	if c.cfg.OnMessage != nil {
		c.cfg.OnMessage(b)
	}
	return json.Unmarshal(b, v)
}

// Send sends a signaling message (docs/signaling.md), such as leave or
// mute, after those the client queued before it.
func (c *Client) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("client: encode: %w", err)
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	c.queue(b)
	return nil
}

// sendDescription queues an offer or answer, then the candidates that
// were waiting for the first one.
func (c *Client) sendDescription(v any) {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	c.queue(encode(c.log, v))
	if !c.descSent {
		c.descSent = true
		for _, b := range c.held {
			c.queue(b)
		}
		c.held = nil
	}
}

func (c *Client) sendCandidate(v any) {
	b := encode(c.log, v)
	c.candMu.Lock()
	defer c.candMu.Unlock()
	if !c.descSent {
		c.held = append(c.held, b)
		return
	}
	c.queue(b)
}

func encode(log *slog.Logger, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		log.Error("encode signaling message", "err", err)
	}
	return b
}

// queue hands a message to the writer, in order.
func (c *Client) queue(b []byte) {
	if b == nil {
		return
	}
	select {
	case c.out <- b:
	case <-c.stop:
	case <-c.done:
	}
}

func (c *Client) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case <-c.done:
			return
		case b := <-c.out:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.ws.Write(ctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				c.log.Debug("signaling write", "err", err)
			}
		}
	}
}

// message is every server message field the client reads.
type message struct {
	Type      string                   `json:"type"`
	SDP       string                   `json:"sdp"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
	Code      string                   `json:"code"`
	Message   string                   `json:"message"`
	Request   string                   `json:"request"`
	Reason    string                   `json:"reason"`
	// Mid, Active and Paused are a layers message's.
	Mid    string   `json:"mid"`
	Active []string `json:"active"`
	Paused []string `json:"paused"`
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.done)
	for {
		var m message
		err := c.read(context.Background(), &m)
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		if err := c.handle(m); err != nil {
			c.log.Warn("signaling", "type", m.Type, "err", err)
		}
	}
}

func (c *Client) handle(m message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.Type {
	case "offer":
		if c.makingOffer || c.pc.SignalingState() != webrtc.SignalingStateStable {
			return nil // impolite: the server rolls its offer back and offers again
		}
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			return err
		}
		if err := c.addPendingLocked(); err != nil {
			return err
		}
		answer, err := c.pc.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := c.pc.SetLocalDescription(answer); err != nil {
			return err
		}
		c.sendDescription(map[string]any{"type": "answer", "sdp": answer.SDP})
	case "answer":
		if !c.makingOffer {
			return fmt.Errorf("an answer with no offer out")
		}
		c.makingOffer = false
		err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP})
		close(c.answered)
		if err != nil {
			return err
		}
		return c.addPendingLocked()
	case "candidate":
		if m.Candidate == nil || m.Candidate.Candidate == "" {
			return nil // end of candidates
		}
		if c.pc.RemoteDescription() == nil {
			c.pending = append(c.pending, *m.Candidate)
			return nil
		}
		return c.pc.AddICECandidate(*m.Candidate)
	case "left":
		c.left = m.Reason
	case "layers":
		// The layers nobody receives are paused, as the web page turns
		// their encodings off, until they are active again.
		if cam := c.cameras[m.Mid]; cam != nil {
			cam.setActive(m.Active, m.Paused)
		}
	case "error":
		return fmt.Errorf("%w: %s: %s (%s)", ErrServer, m.Code, m.Message, m.Request)
	}
	return nil
}

func (c *Client) addPendingLocked() error {
	var errs []error
	for _, cand := range c.pending {
		errs = append(errs, c.pc.AddICECandidate(cand))
	}
	c.pending = nil
	return errors.Join(errs...)
}

// requestKeyframes sends a PLI every keyframeRetry for each offered video
// SSRC that has not started: the server forwards video from a keyframe on.
func (c *Client) requestKeyframes() {
	defer c.wg.Done()
	tick := time.NewTicker(keyframeRetry)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.done:
			return
		case <-tick.C:
		}
		c.mu.Lock()
		var waiting []rtcp.Packet
		if rd := c.pc.RemoteDescription(); rd != nil {
			for _, ssrc := range rtctest.VideoSSRCs(rd.SDP) {
				if !c.started[ssrc] {
					waiting = append(waiting, &rtcp.PictureLossIndication{MediaSSRC: ssrc})
				}
			}
		}
		c.mu.Unlock()
		if len(waiting) > 0 {
			_ = c.pc.WriteRTCP(waiting)
		}
	}
}

// refusedByHTTP reads a refused upgrade: its status, Retry-After and the
// API's error code from the JSON body.
func refusedByHTTP(resp *http.Response) *RefusedError {
	e := &RefusedError{Status: resp.StatusCode, Detail: resp.Status}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.RetryAfter = time.Duration(secs) * time.Second
	}
	if resp.Body != nil {
		var body struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10)); err == nil && json.Unmarshal(b, &body) == nil {
			e.Code = body.Error.Code
			if body.Error.Message != "" {
				e.Detail = body.Error.Message
			}
		}
	}
	return e
}

func drain(tr *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := tr.Read(buf); err != nil {
			return
		}
	}
}
