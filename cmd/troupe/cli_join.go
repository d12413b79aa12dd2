package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/spf13/cobra"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// joinOptions are the flags of `troupe join`.
type joinOptions struct {
	api      apiFlags
	room     string
	identity string
	name     string
	publish  bool
	duration time.Duration
	every    time.Duration
}

func newJoinCmd() *cobra.Command {
	o := &joinOptions{}
	cmd := &cobra.Command{
		Use:   "join --room ROOM [--publish] [--duration 30s]",
		Short: "Join a room from the terminal and print the media that arrives",
		Long: `Join a room as a participant, over the signaling WebSocket and a peer
connection, and print every track that arrives and the packets and bits per
second of each: a line when that changes (a track comes, starts or stops
receiving, or ends), and each --every while media arrives steadily. A quick
check that a deployment carries media.
With --publish it also sends synthetic video (VP8) and audio (Opus) that
others in the room receive. It runs until Ctrl-C or --duration.

The join token is minted through the API with the admin token (--token,
TROUPE_TOKEN, or the local key; see troupe room --help). Exit status: 0 when
it ran its course, 1 when the join was refused or the server ended the
connection, 2 when the command line is wrong.`,
		Args: cobra.NoArgs,
	}
	o.api.bindConn(cmd.Flags()) // no --json: join prints what arrives, not an API answer
	f := cmd.Flags()
	f.StringVar(&o.room, "room", "", "the room to join")
	f.StringVar(&o.identity, "identity", "", "the participant's identity (default: cli- and a random suffix)")
	f.StringVar(&o.name, "name", "", "the participant's display name (default: the identity)")
	f.BoolVar(&o.publish, "publish", false, "send synthetic video and audio")
	f.DurationVar(&o.duration, "duration", 0, "leave after this long (0: at Ctrl-C)")
	f.DurationVar(&o.every, "every", 10*time.Second, "how often to print the rates while they hold (a change prints at once)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		switch {
		case o.room == "":
			return usageErrorf("say which room: --room ROOM")
		case o.duration < 0:
			return usageErrorf("--duration %v: must not be negative", o.duration)
		case o.every <= 0:
			return usageErrorf("--every %v: must be positive", o.every)
		}
		if o.identity == "" {
			o.identity = "cli-" + randomSuffix()
		}
		if o.name == "" {
			o.name = o.identity
		}
		return runJoin(cmd, o)
	}
	return cmd
}

// randomSuffix is a short random name part.
func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand's Read does not fail
	return hex.EncodeToString(b)
}

func runJoin(cmd *cobra.Command, o *joinOptions) error {
	c, err := o.api.client(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	role := "subscriber"
	if o.publish {
		role = "publisher"
	}
	tokenReq := map[string]any{"identity": o.identity, "name": o.name, "role": role}
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/rooms/"+seg(o.room)+"/tokens", tokenReq)
	if err != nil {
		return err
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Token == "" {
		return fmt.Errorf("the server's token answer has no token: %s", raw)
	}
	api, err := joinAPI()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	stats := &trackStats{}
	var readers sync.WaitGroup
	dialed := make(chan *client.Client, 1) // the client, once Dial returns it
	p, err := client.Dial(ctx, client.Config{
		URL: c.base, Token: tok.Token, API: api,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnTrack: func(tr *webrtc.TrackRemote) {
			readers.Add(1)
			defer readers.Done()
			if p := dialedClient(ctx, dialed); p != nil {
				if r := receiverOf(p.PeerConnection(), tr); r != nil {
					readers.Add(1)
					go func() {
						defer readers.Done()
						discardRTCP(r)
					}()
				}
			}
			stats.add(tr).read(tr)
		},
	})
	if err != nil {
		close(dialed) // no client: tracks that came meanwhile are only counted
		return fmt.Errorf("join room %s: %w", o.room, err)
	}
	dialed <- p
	defer func() {
		p.Close() // ends the tracks and receivers, and so their readers
		readers.Wait()
	}()
	fmt.Fprintf(out, "joined room %s as %s (%s, participant %s)\n", o.room, o.identity, role, p.ParticipantID())

	var senders sync.WaitGroup
	defer senders.Wait()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	if o.publish {
		if err := publishSynthetic(sendCtx, p, o.identity, &senders); err != nil {
			return err
		}
		fmt.Fprintln(out, "publishing synthetic video (VP8, 30 fps) and audio (Opus, 50 packets/s)")
	}

	// A track is looked at each second (or --every, if shorter); a line
	// is printed when what arrives changes, or each --every while it
	// holds.
	printer := &statusPrinter{stats: stats, w: out, heartbeat: o.every}
	tick := time.NewTicker(min(time.Second, o.every))
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(out, "left the room; received: %s\n", printer.total())
			return nil
		case <-p.Done():
			return connectionEnded(p.Err())
		case now := <-tick.C:
			printer.sample(now, now.Sub(last))
			last = now
		}
	}
}

// leftBecause words the reasons a server closes a participant's socket
// with (its leave reasons, and its own shutdown).
var leftBecause = map[string]string{
	"kicked":               "you were removed from the room (kicked)",
	"replaced":             "the same identity joined the room again elsewhere (replaced)",
	"room-ended":           "the room ended",
	"session-ended":        "the room's session ended",
	"remove-after-elapsed": "the room's time limit for a participant passed",
	"remove-at":            "the room's removal time came",
	"node-lost":            "the server that held the room was lost",
	"hidden":               "your grants changed (hidden)",
	"server shutting down": "the server is shutting down",
}

// connectionEnded says in Troupe's words why the signaling connection
// ended: the server's reason, not the WebSocket library's wording.
func connectionEnded(err error) error {
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		return fmt.Errorf("the connection to the server was lost: %w", err)
	}
	if why, ok := leftBecause[ce.Reason]; ok {
		return fmt.Errorf("the server ended the connection: %s", why)
	}
	if ce.Reason != "" {
		return fmt.Errorf("the server ended the connection: %s", ce.Reason)
	}
	return fmt.Errorf("the server ended the connection (WebSocket close code %d)", int(ce.Code))
}

// dialedClient waits for the client that Dial returns (a track may arrive
// before it does), and passes it on to the next track; nil if Dial failed
// or ctx ended first.
func dialedClient(ctx context.Context, dialed chan *client.Client) *client.Client {
	select {
	case p, ok := <-dialed:
		if ok {
			dialed <- p
		}
		return p
	case <-ctx.Done():
		return nil
	}
}

// receiverOf finds the receiver of tr.
func receiverOf(pc *webrtc.PeerConnection, tr *webrtc.TrackRemote) *webrtc.RTPReceiver {
	for _, r := range pc.GetReceivers() {
		if r.Track() == tr {
			return r
		}
	}
	return nil
}

// discardRTCP reads r's RTCP until r stops. Reading is what runs the
// server's sender reports through pion's interceptors, whose reception
// reports then echo them: without it the server measures no round trip
// to this client.
func discardRTCP(r *webrtc.RTPReceiver) {
	for {
		if _, _, err := r.ReadRTCP(); err != nil {
			return
		}
	}
}

// joinAPI is a pion API with its default codecs and interceptors, on every
// interface: the server may be anywhere.
func joinAPI() (*webrtc.API, error) {
	var se webrtc.SettingEngine
	// A server on this machine (the default --url) offers loopback.
	se.SetIncludeLoopbackCandidate(true)
	return rtctest.DefaultAPI(se)
}

// publishSynthetic publishes a video and an audio track and sends
// synthetic packets on them until ctx ends; wg counts the senders.
func publishSynthetic(ctx context.Context, p *client.Client, identity string, wg *sync.WaitGroup) error {
	video, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", identity)
	if err != nil {
		return err
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", identity)
	if err != nil {
		return err
	}
	rtpSenders, err := p.Publish(ctx, video, audio)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	run := []struct {
		s        *rtctest.Sender
		interval time.Duration
	}{
		{&rtctest.Sender{Track: video, PayloadSize: 1000, KeyframeEvery: 60, TimestampStep: 3000}, time.Second / 30},
		{&rtctest.Sender{Track: audio, PayloadSize: 80, TimestampStep: 960}, 20 * time.Millisecond},
	}
	for i, r := range run {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r.s.ServeKeyframeRequests(rtpSenders[i]) // returns when the sender stops
		}()
		go func() {
			defer wg.Done()
			_ = r.s.Run(ctx, 0, r.interval) // ends with ctx
			_ = rtpSenders[i].Stop()
		}()
	}
	return nil
}

// trackStats counts what arrives on each track.
type trackStats struct {
	mu     sync.Mutex // guards tracks
	tracks []*trackCount
}

type trackCount struct {
	id, label      string
	about          string // the line announcing the track
	packets, bytes atomic.Uint64
	ended          atomic.Bool // its reader stopped: the track is gone

	// The printer's own.
	announced        bool
	gone             bool   // printed as ended, left out since
	lastPkts, lastBy uint64 // at the previous sample
}

func (s *trackStats) add(tr *webrtc.TrackRemote) *trackCount {
	return s.addTrack(tr.ID(),
		fmt.Sprintf("%s %s/%s", tr.StreamID(), tr.Kind(), strings.TrimPrefix(strings.ToLower(tr.Codec().MimeType), tr.Kind().String()+"/")),
		fmt.Sprintf("track %s: %s %s from %s", tr.ID(), tr.Kind(), tr.Codec().MimeType, tr.StreamID()))
}

func (s *trackStats) addTrack(id, label, about string) *trackCount {
	n := &trackCount{id: id, label: label, about: about}
	s.mu.Lock()
	s.tracks = append(s.tracks, n)
	s.mu.Unlock()
	return n
}

// read counts the track's packets until it ends.
func (n *trackCount) read(tr *webrtc.TrackRemote) {
	defer n.ended.Store(true)
	buf := make([]byte, 1500)
	for {
		k, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		n.packets.Add(1)
		n.bytes.Add(uint64(k))
	}
}

// snapshot is the tracks so far, in label order.
func (s *trackStats) snapshot() []*trackCount {
	s.mu.Lock()
	tracks := append([]*trackCount(nil), s.tracks...)
	s.mu.Unlock()
	sort.SliceStable(tracks, func(i, j int) bool { return tracks[i].label < tracks[j].label })
	return tracks
}

// statusPrinter prints what arrives as it changes: a line when a track
// comes, starts or stops receiving, or ends, and while media arrives and
// nothing changes, one each heartbeat. A participant alone in a room gets
// one line that says so, not one a second. One goroutine calls it.
type statusPrinter struct {
	stats     *trackStats
	w         io.Writer
	heartbeat time.Duration

	printed  bool
	lastKey  string    // the tracks and their states at the last line
	lastLine time.Time // when it was printed
	received bool      // a track has come
}

// sample looks at the tracks (over is the time since the last sample) and
// prints a line if they changed or the heartbeat is due.
func (p *statusPrinter) sample(now time.Time, over time.Duration) {
	if over <= 0 {
		return
	}
	var parts, key []string
	receiving, ended := false, false
	for _, n := range p.stats.snapshot() {
		if n.gone {
			continue
		}
		if !n.announced {
			fmt.Fprintln(p.w, n.about)
			n.announced, p.received = true, true
		}
		pkts, by := n.packets.Load(), n.bytes.Load()
		var state, part string
		switch {
		case n.ended.Load():
			state, part = "ended", fmt.Sprintf("%s ended (%d packets)", n.label, pkts)
			n.gone, ended = true, true
		case pkts > n.lastPkts:
			state = "receiving"
			part = fmt.Sprintf("%s %.0f pkt/s %.0f kbit/s (%d packets)", n.label,
				float64(pkts-n.lastPkts)/over.Seconds(), float64(by-n.lastBy)*8/1000/over.Seconds(), pkts)
			receiving = true
		case pkts == 0:
			state, part = "waiting", n.label+" no packets yet"
		default:
			state, part = "stalled", fmt.Sprintf("%s stalled (%d packets)", n.label, pkts)
		}
		n.lastPkts, n.lastBy = pkts, by
		parts = append(parts, part)
		if state != "ended" { // an ended track prints once, then is left out
			key = append(key, n.id+"="+state)
		}
	}
	k := strings.Join(key, " ")
	due := receiving && now.Sub(p.lastLine) >= p.heartbeat
	if p.printed && !ended && k == p.lastKey && !due {
		return
	}
	p.printed, p.lastKey, p.lastLine = true, k, now
	if len(parts) == 0 {
		parts = append(parts, "no media now")
		if !p.received {
			parts[0] = "no media yet"
		}
	}
	fmt.Fprintf(p.w, "%s  %d tracks: %s\n", now.Format("15:04:05"), len(key), strings.Join(parts, "; "))
}

// total is what each track received in all.
func (p *statusPrinter) total() string {
	tracks := p.stats.snapshot()
	if len(tracks) == 0 {
		return "no media"
	}
	parts := make([]string, len(tracks))
	for i, n := range tracks {
		parts[i] = fmt.Sprintf("%s (%d packets)", n.label, n.packets.Load())
	}
	return strings.Join(parts, "; ")
}
