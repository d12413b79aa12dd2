package mediaload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"golang.org/x/sync/errgroup"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/bench/scenarios"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// Defaults of Config.
const (
	DefaultMaxLoss     = 0.01
	DefaultMaxP99      = 100 * time.Millisecond
	DefaultJoinTimeout = 20 * time.Second
	// staggeredJoins is how many participants join at a time outside a storm.
	staggeredJoins = 4
	// settle lets the joins' keyframes and bursts pass before measuring.
	settle = time.Second
	// grace waits for the packets in flight at the end of the window.
	grace = 500 * time.Millisecond
)

// Target is the server under test.
type Target struct {
	// Name labels the results: "troupe" or "naive-pion".
	Name string
	// BaseURL is the server's root, like http://127.0.0.1:7880. Required.
	BaseURL string
	// Token is an admin token for the REST API (rooms and join tokens).
	Token string
	// PIDs are the server's processes, whose CPU and memory are read from
	// /proc and summed: one, or every node of a cluster on this machine.
	// None leaves those figures out.
	PIDs []int
	// MoreURLs are the other nodes of a cluster: a client that reconnects
	// tries them after BaseURL (the REST calls all go to BaseURL).
	MoreURLs []string
}

// Config describes one run.
type Config struct {
	Target   Target
	Scenario scenarios.Scenario
	// Steps are the subscribers per room of each step; empty means one
	// step of Scenario.Subscribers. Participants stay from one step to
	// the next; each step adds subscribers.
	Steps []int
	// StopBeyondLimits ends the run after the first step whose loss or
	// p99 latency passes MaxLoss or MaxP99 (the ramp).
	StopBeyondLimits bool
	// MaxLoss defaults to DefaultMaxLoss, MaxP99 to DefaultMaxP99.
	MaxLoss float64
	MaxP99  time.Duration
	// JoinTimeout bounds the wait for every participant's media at each
	// step; DefaultJoinTimeout when zero.
	JoinTimeout time.Duration
	// Progress, if set, gets progress lines: each update a line of its
	// own (a repeated one is left out), so that a pipe or a log file reads
	// well; or, with ProgressInPlace, one line rewritten in place with \r,
	// for a terminal.
	Progress        io.Writer
	ProgressInPlace bool
	// API makes the clients' peer connections. By default each client
	// gets its own rtctest.ClientAPIWithArrivals, whose sockets record
	// when packets arrive: the path latency. With a given API that figure
	// is left out. The subscribers of a simulcast scenario always get
	// their own, shaped to their class's link (ClientAPIWithArrivalsAndShaper).
	API *webrtc.API
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// NoReconnect keeps a client that lost its connection out: by default
	// each joins again by itself (bench/client.Session), through the
	// target's URLs in turn, as a cluster's clients do when a node dies,
	// and the steps count the reconnections and the time without media.
	NoReconnect bool
}

// Result is a run's steps and the capacity found.
type Result struct {
	Steps []Step
	// Capacity is the subscribers (all rooms) of the last step within the
	// limits, and Limited whether a step went beyond them.
	Capacity int
	Limited  bool
}

func (c *Config) setDefaults() error {
	if c.MaxLoss == 0 {
		c.MaxLoss = DefaultMaxLoss
	}
	if c.MaxP99 == 0 {
		c.MaxP99 = DefaultMaxP99
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Target.Name == "" {
		c.Target.Name = "troupe"
	}
	if len(c.Steps) == 0 {
		c.Steps = []int{c.Scenario.Subscribers}
	}
	if c.Target.BaseURL == "" {
		return fmt.Errorf("%w: a target base URL is required", ErrInvalidConfig)
	}
	for i, n := range c.Steps {
		if n < 0 || (i > 0 && n < c.Steps[i-1]) {
			return fmt.Errorf("%w: steps %v: subscriber counts must not decrease", ErrInvalidConfig, c.Steps)
		}
	}
	if err := c.Scenario.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// participant is one client of the run: a Session that reconnects by
// itself, or, with NoReconnect, one Client.
type participant struct {
	sess      *client.Session
	direct    *client.Client
	id        string // the first connection's participant id, which names it all run long
	room      int
	publisher bool
	joinStart time.Time
	step      int

	// member is a subscriber's class in a simulcast scenario; nil for a
	// publisher, or outside that scenario.
	member *classMember

	mu     sync.Mutex // guards recvs and layers
	recvs  []*rtctest.Receiver
	layers []*layerReceiver // simulcast cameras received
	wg     sync.WaitGroup   // the receivers' read loops
}

// conn is the participant's current connection.
func (p *participant) conn() *client.Client {
	if p.sess != nil {
		return p.sess.Client()
	}
	return p.direct
}

func (p *participant) close() error {
	if p.sess != nil {
		return p.sess.Close()
	}
	return p.direct.Close()
}

func (p *participant) stats() client.SessionStats {
	if p.sess != nil {
		return p.sess.Stats()
	}
	return client.SessionStats{}
}

func (p *participant) receivers() []*rtctest.Receiver {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*rtctest.Receiver(nil), p.recvs...)
}

func (p *participant) layerReceivers() []*layerReceiver {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*layerReceiver(nil), p.layers...)
}

// firstPacket is when the participant's first packet arrived, if any.
func (p *participant) firstPacket() (time.Time, bool) {
	var first time.Time
	earliest := func(at time.Time) {
		if !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	for _, r := range p.receivers() {
		earliest(r.Stats().FirstPacketAt)
	}
	for _, r := range p.layerReceivers() {
		at, _ := r.started()
		earliest(at)
	}
	return first, !first.IsZero()
}

// source is one published track and its sender.
type source struct {
	sender *rtctest.Sender
	room   int
	from   string // publisher's participant id
}

type runner struct {
	cfg  Config
	http *http.Client
	log  *slog.Logger

	rooms []string
	// recordings are the ids of the rooms' recordings, for a scenario
	// that records (recording.go).
	recordings []string
	// senders run until stopSend; their goroutines are in sendWG.
	sendCtx  context.Context
	stopSend context.CancelFunc
	sendWG   sync.WaitGroup
	// lastProgress is the last progress line written; only Run's
	// goroutine reports progress.
	lastProgress string

	mu      sync.Mutex // guards the following
	parts   []*participant
	sources map[string]*source // by publisher id + "/" + kind
	// cams are the publishers' simulcast cameras, by publisher id.
	cams   map[string]*camSource
	joined int // identities handed out
	// firstIDs maps the participant id of a publisher's later connection
	// to its first one, which the sources are known by: what a subscriber
	// receives is named by the publisher's current id.
	firstIDs map[string]string
}

// Run drives the scenario against the target, step by step, and reports
// what it measured. It closes every client it opened before it returns.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return Result{}, err
	}
	r := &runner{cfg: cfg, http: &http.Client{Timeout: 30 * time.Second}, log: cfg.Logger, sources: map[string]*source{}, cams: map[string]*camSource{}, firstIDs: map[string]string{}}
	r.sendCtx, r.stopSend = context.WithCancel(context.Background())
	defer r.teardown()

	sc := cfg.Scenario
	for i := range sc.Rooms {
		id, err := r.createRoom(ctx, fmt.Sprintf("bench %s %d", sc.Name, i+1))
		if err != nil {
			return Result{}, err
		}
		r.rooms = append(r.rooms, id)
	}
	idleRSS, _ := r.rss()

	// Publishers first, so that subscribers join a room with media.
	var pubs []func(context.Context) error
	for room := range sc.Rooms {
		for range sc.Publishers {
			pubs = append(pubs, func(ctx context.Context) error { return r.joinPublisher(ctx, room) })
		}
	}
	if err := runLimited(ctx, staggeredJoins, pubs); err != nil {
		return Result{}, err
	}
	if sc.Record {
		if err := r.startRecordings(ctx); err != nil {
			return Result{}, err
		}
	}

	var res Result
	current := 0
	for i, subs := range cfg.Steps {
		step := i + 1
		// Each room's n-th subscriber is of the same class (ClassOf).
		type joiner struct {
			token string
			class int
		}
		tokens := make([][]joiner, sc.Rooms)
		for room := range sc.Rooms {
			for n := current; n < subs; n++ {
				tok, err := r.token(ctx, room, "subscriber")
				if err != nil {
					return res, err
				}
				tokens[room] = append(tokens[room], joiner{tok, sc.ClassOf(n)})
			}
		}
		var joins []func(context.Context) error
		for room, toks := range tokens {
			for _, j := range toks {
				joins = append(joins, func(ctx context.Context) error {
					var m *classMember
					if sc.Simulcast != nil {
						m = &classMember{class: j.class}
					}
					_, err := r.join(ctx, room, j.token, step, nil, m)
					return err
				})
			}
		}
		limit := staggeredJoins
		if sc.Join == scenarios.JoinStorm {
			limit = len(joins)
		}
		r.progress("[%s] step %d/%d: %d subscribers joining", cfg.Target.Name, step, len(cfg.Steps), len(joins))
		if err := runLimited(ctx, limit, joins); err != nil {
			return res, err
		}
		current = subs
		r.waitMedia(ctx)
		s, err := r.measure(ctx, step, idleRSS)
		if err != nil {
			return res, err
		}
		s.WithinLimits = s.LossRatio <= cfg.MaxLoss && s.LatencyP99Ms <= float64(cfg.MaxP99)/float64(time.Millisecond)
		res.Steps = append(res.Steps, s)
		if s.WithinLimits && !res.Limited {
			res.Capacity = s.Subscribers
		} else {
			res.Limited = true
		}
		if !s.WithinLimits && cfg.StopBeyondLimits {
			break
		}
	}
	r.progressDone()
	return res, nil
}

// runLimited runs fns with at most limit at a time; the first error
// cancels the others.
func runLimited(ctx context.Context, limit int, fns []func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(limit, 1))
	for _, fn := range fns {
		g.Go(func() error { return fn(ctx) })
	}
	return g.Wait()
}

func (r *runner) post(ctx context.Context, path string, body any, status int, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.cfg.Target.BaseURL, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.cfg.Target.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Target.Token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != status {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return nil
}

func (r *runner) createRoom(ctx context.Context, name string) (string, error) {
	var room struct {
		ID string `json:"id"`
	}
	config := map[string]any{"max_participants": 10000}
	if r.cfg.Scenario.Record {
		config["recording_enabled"] = true
	}
	body := map[string]any{"name": name, "config": config}
	if err := r.post(ctx, "/api/v1/rooms", body, http.StatusCreated, &room); err != nil {
		return "", fmt.Errorf("create room: %w", err)
	}
	if room.ID == "" {
		return "", errors.New("create room: no id in the reply")
	}
	return room.ID, nil
}

// token mints a join token through the REST API, as an application would.
func (r *runner) token(ctx context.Context, room int, role string) (string, error) {
	r.mu.Lock()
	r.joined++
	identity := fmt.Sprintf("%s-%d", role, r.joined)
	r.mu.Unlock()
	var tok struct {
		Token string `json:"token"`
	}
	body := map[string]any{"identity": identity, "name": identity, "role": role, "ttl": 6 * 3600}
	if err := r.post(ctx, "/api/v1/rooms/"+r.rooms[room]+"/tokens", body, http.StatusOK, &tok); err != nil {
		return "", fmt.Errorf("join token: %w", err)
	}
	return tok.Token, nil
}

// join connects one participant; its receivers start as tracks arrive.
// onConnect, if set, runs on each of its connections (publish there).
// member, if set, is a simulcast subscriber's class: its link is shaped
// to the class's cap and it asks for the class's size.
func (r *runner) join(ctx context.Context, room int, token string, step int, onConnect func(context.Context, *client.Client) error, member *classMember) (*participant, error) {
	p := &participant{room: room, publisher: onConnect != nil, step: step, member: member}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
	defer cancel()
	// An API per client: the arrivals registry is keyed by SSRC, which a
	// server may send to every subscriber alike. A reconnection keeps it.
	api, arrivals := r.cfg.API, (*rtctest.Arrivals)(nil)
	var class scenarios.Class
	switch {
	case member != nil:
		// A class's subscriber always has its own shaped API: its link
		// is what it measures.
		var err error
		if api, arrivals, member.shaper, err = rtctest.ClientAPIWithArrivalsAndShaper(); err != nil {
			return nil, fmt.Errorf("client API: %w", err)
		}
		class = classesOf(r.cfg.Scenario)[member.class]
		member.setCap(class.CapKbps)
	case api == nil:
		var err error
		if api, arrivals, err = rtctest.ClientAPIWithArrivals(); err != nil {
			return nil, fmt.Errorf("client API: %w", err)
		}
	}
	simulcast := r.cfg.Scenario.Simulcast != nil
	cfg := client.Config{
		URL: r.cfg.Target.BaseURL, Token: token, API: api, Logger: r.log,
		VideoSize: [2]int{class.Width, class.Height},
		OnTrack: func(tr *webrtc.TrackRemote) {
			p.wg.Add(1)
			defer p.wg.Done()
			if simulcast && tr.Kind() == webrtc.RTPCodecTypeVideo {
				rcv := &layerReceiver{track: tr, arrivals: arrivals}
				p.mu.Lock()
				p.layers = append(p.layers, rcv)
				p.mu.Unlock()
				rcv.run()
				return
			}
			rcv := rtctest.NewReceiverWithArrivals(tr, arrivals)
			p.mu.Lock()
			p.recvs = append(p.recvs, rcv)
			p.mu.Unlock()
			rcv.Run()
		},
	}
	if member != nil {
		cfg.OnMessage = member.onMessage
	}
	p.joinStart = time.Now()
	var err error
	if r.cfg.NoReconnect {
		if p.direct, err = client.Dial(ctx, cfg); err == nil && onConnect != nil {
			if err = onConnect(ctx, p.direct); err != nil {
				_ = p.direct.Close()
			}
		}
	} else {
		p.sess, err = client.Connect(ctx, cfg, client.Reconnect{URLs: r.cfg.Target.MoreURLs, OnConnect: func(ctx context.Context, c *client.Client) error {
			if p.id != "" { // a reconnection
				r.mu.Lock()
				r.firstIDs[c.ParticipantID()] = p.id
				r.mu.Unlock()
			}
			if onConnect == nil {
				return nil
			}
			return onConnect(ctx, c)
		}})
	}
	if err != nil {
		return nil, fmt.Errorf("join room %s: %w", r.rooms[room], err)
	}
	p.id = p.conn().ParticipantID()
	r.mu.Lock()
	r.parts = append(r.parts, p)
	r.mu.Unlock()
	return p, nil
}

// firstID is the participant id that names the publisher of a stream.
func (r *runner) firstIDLocked(id string) string {
	if first, ok := r.firstIDs[id]; ok {
		return first
	}
	return id
}

func (r *runner) joinPublisher(ctx context.Context, room int) error {
	tok, err := r.token(ctx, room, "publisher")
	if err != nil {
		return err
	}
	sc := r.cfg.Scenario
	type media struct {
		s        *rtctest.Sender
		kind     string
		interval time.Duration
	}
	// The server names the tracks it forwards by the publisher's
	// participant id, whatever stream id they have here.
	var tracks []webrtc.TrackLocal
	var ms []media
	if v := sc.Video; v != nil {
		t, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "bench")
		if err != nil {
			return err
		}
		tracks = append(tracks, t)
		ms = append(ms, media{&rtctest.Sender{
			Track: t, PayloadSize: v.PayloadBytes(), PacketsPerFrame: v.PacketsPerFrame(),
			TimestampStep: uint32(90000 / v.FPS), KeyframeEvery: 3 * v.FPS,
		}, "video", time.Second / time.Duration(v.FPS)})
	}
	if a := sc.Audio; a != nil {
		t, err := webrtc.NewTrackLocalStaticRTP(rtctest.Opus, "audio", "bench")
		if err != nil {
			return err
		}
		tracks = append(tracks, t)
		ms = append(ms, media{&rtctest.Sender{
			Track: t, PayloadSize: a.PayloadBytes, TimestampStep: uint32(48000 / a.PacketsPerSec),
		}, "audio", time.Second / time.Duration(a.PacketsPerSec)})
	}
	var cam *client.SimulcastCamera
	if v := sc.Simulcast; v != nil {
		var layers []client.Layer
		for _, l := range v.Layers {
			layers = append(layers, client.Layer{RID: l.RID, Width: l.Width, Height: l.Height, BitrateKbps: l.BitrateKbps})
		}
		if cam, err = client.NewSimulcastCamera(client.CameraConfig{StreamID: "bench", Layers: layers, FPS: v.FPS, MaxPayloadBytes: v.MaxPayloadBytes}); err != nil {
			return err
		}
	}
	// Publish on every connection; the senders write to the same tracks
	// throughout, and each connection's keyframe requests are served.
	publish := func(ctx context.Context, c *client.Client) error {
		pctx, cancel := context.WithTimeout(ctx, r.cfg.JoinTimeout)
		defer cancel()
		if cam != nil {
			if err := c.PublishSimulcast(pctx, cam); err != nil {
				return fmt.Errorf("publish camera: %w", err)
			}
		}
		if len(tracks) == 0 {
			return nil
		}
		senders, err := c.Publish(pctx, tracks...)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, m := range ms {
			if m.kind == "audio" {
				// Each microphone says how loud it is, as a browser's
				// does, at a level of its own, so that the server has
				// speakers to tell apart.
				m.s.SetAudioLevel(audioLevelID(senders[i]), uint8(20+3*(len(r.sources)%10)), true)
			}
			r.sendWG.Add(1)
			go func() {
				defer r.sendWG.Done()
				m.s.ServeKeyframeRequests(senders[i])
			}()
		}
		return nil
	}
	p, err := r.join(ctx, room, tok, 1, publish, nil)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if cam != nil {
		r.cams[p.id] = &camSource{cam: cam, room: room, from: p.id}
		r.sendWG.Add(1)
		go func() {
			defer r.sendWG.Done()
			if err := cam.Run(r.sendCtx); err != nil {
				r.log.Warn("camera stopped", "err", err)
			}
		}()
	}
	for _, m := range ms {
		r.sources[p.id+"/"+m.kind] = &source{sender: m.s, room: room, from: p.id}
		r.sendWG.Add(1)
		go func() {
			defer r.sendWG.Done()
			var err error
			if m.kind == "video" {
				err = m.s.RunFrames(r.sendCtx, m.interval)
			} else {
				err = m.s.Run(r.sendCtx, 0, m.interval)
			}
			if err != nil {
				r.log.Warn("sender stopped", "err", err)
			}
		}()
	}
	r.mu.Unlock()
	return nil
}

// audioLevelID is the id under which sender's connection negotiated the
// audio level header extension, 0 when it did not (a server that leaves
// it out: the microphone then writes none).
func audioLevelID(sender *webrtc.RTPSender) uint8 {
	for _, x := range sender.GetParameters().HeaderExtensions {
		if x.URI == sdp.AudioLevelURI && x.ID > 0 && x.ID < 15 {
			return uint8(x.ID)
		}
	}
	return 0
}

// expectedTracks is how many tracks a participant should receive: a
// simulcast subscriber on a link below the lowest layer gets no camera.
func (r *runner) expectedTracks(p *participant) int {
	n := 0
	for _, s := range r.sources {
		if s.room == p.room && s.from != p.id {
			n++
		}
	}
	if m := p.member; m != nil && !expectsVideo(classesOf(r.cfg.Scenario)[m.class], r.cfg.Scenario.Simulcast.Layers[0].BitrateKbps) {
		return n
	}
	return n + r.camerasFor(p)
}

// waitMedia waits until every participant gets packets on every track it
// should receive, or JoinTimeout passes; the late ones show as losses and
// join failures.
func (r *runner) waitMedia(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.JoinTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		r.mu.Lock()
		waiting := 0
		for _, p := range r.parts {
			want := r.expectedTracks(p)
			got := 0
			for _, rcv := range p.receivers() {
				if rcv.Stats().Packets > 0 {
					got++
				}
			}
			for _, rcv := range p.layerReceivers() {
				if _, ok := rcv.started(); ok {
					got++
				}
			}
			if got < want {
				waiting++
			}
		}
		total := len(r.parts)
		r.mu.Unlock()
		if waiting == 0 {
			return
		}
		r.progress("[%s] waiting for media: %d of %d participants receive everything", r.cfg.Target.Name, total-waiting, total)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rss is the server processes' resident memory, summed.
func (r *runner) rss() (int64, error) { return sumOf(r.cfg.Target.PIDs, proc.ProcessRSS) }

// serverCPU is the server processes' CPU time, summed.
func (r *runner) serverCPU() (time.Duration, error) {
	return sumOf(r.cfg.Target.PIDs, proc.ProcessCPU)
}

// sumOf sums read of each process, or fails with the first process whose
// figure cannot be read.
func sumOf[T int64 | time.Duration](pids []int, read func(pid int) (T, error)) (T, error) {
	var sum T
	for _, pid := range pids {
		n, err := read(pid)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// measure runs one measuring window and sums it up.
func (r *runner) measure(ctx context.Context, step int, idleRSS int64) (Step, error) {
	sleep(ctx, settle)
	r.mu.Lock()
	parts := append([]*participant(nil), r.parts...)
	counters0 := map[string]uint32{}
	for k, s := range r.sources {
		counters0[k] = s.sender.Sent()
	}
	r.mu.Unlock()
	for _, p := range parts {
		for _, rcv := range p.receivers() {
			rcv.Drain()
		}
		for _, rcv := range p.layerReceivers() {
			rcv.drain()
		}
	}
	pauses0 := pauseCounts(parts)
	cpu0, err := r.serverCPU()
	if err != nil {
		return Step{}, err
	}
	rec0, err := r.recordedBytes(ctx)
	if err != nil {
		return Step{}, err
	}
	self0, t0 := proc.SelfCPU(), time.Now()
	dur := r.cfg.Scenario.Duration
	classes := classesOf(r.cfg.Scenario)
	events := cutEvents(classes)
	cuts := make([]cutTimes, len(classes))
	// The window runs by the clock, a tick a second, stopping also at
	// each cut of a class's link.
	for elapsed := time.Duration(0); elapsed < dur && ctx.Err() == nil; elapsed = time.Since(t0) {
		for len(events) > 0 && events[0].at <= elapsed {
			ev := events[0]
			events = events[1:]
			setClassCap(parts, ev.class, ev.kbps)
			if ev.end {
				cuts[ev.class].end = time.Now()
			} else {
				cuts[ev.class].cut = time.Now()
			}
		}
		next := min(elapsed.Truncate(time.Second)+time.Second, dur)
		if len(events) > 0 {
			next = min(next, events[0].at)
		}
		sleep(ctx, next-elapsed)
		cpu, _ := r.serverCPU()
		r.progress("[%s] step %d/%d: %d participants, %v of %v, server %.0f%% CPU, clients %.0f%% CPU",
			r.cfg.Target.Name, step, len(r.cfg.Steps), len(parts), time.Since(t0).Round(time.Second), dur,
			100*(cpu-cpu0).Seconds()/time.Since(t0).Seconds(), 100*(proc.SelfCPU()-self0).Seconds()/time.Since(t0).Seconds())
	}
	// A cut left open ends with the window: the next step starts on the
	// classes' own links.
	for i, c := range classes {
		if c.Cut != nil {
			setClassCap(parts, i, c.CapKbps)
		}
	}
	if err := ctx.Err(); err != nil {
		return Step{}, err
	}
	r.mu.Lock()
	counters1 := map[string]uint32{}
	for k, s := range r.sources {
		counters1[k] = s.sender.Sent()
	}
	sources := r.sources
	r.mu.Unlock()
	cpu1, err := r.serverCPU()
	if err != nil {
		return Step{}, err
	}
	self1, t1 := proc.SelfCPU(), time.Now()
	rec1, err := r.recordedBytes(ctx)
	if err != nil {
		return Step{}, err
	}
	rss, err := r.rss()
	if err != nil {
		return Step{}, err
	}
	sleep(ctx, grace)
	pauses1 := pauseCounts(parts)

	sc := r.cfg.Scenario
	s := Step{
		Scenario: sc.Name, Server: r.cfg.Target.Name, Step: step, Rooms: sc.Rooms,
		Publishers: sc.Rooms * sc.Publishers, Participants: len(parts),
		Seconds: t1.Sub(t0).Seconds(), ServerRSSBytes: rss,
	}
	s.Subscribers = s.Participants - s.Publishers
	if sc.Record {
		s.RecordedTracks = s.Publishers * (btoi(sc.Video != nil) + btoi(sc.Audio != nil))
		s.RecordingBytesPerSec = float64(rec1-rec0) / s.Seconds
	}
	var latencies, paths, joins []time.Duration
	for _, p := range parts {
		// A capped link's losses and late retransmissions are its own:
		// its class's figures show them.
		capped := p.member != nil && classesOf(sc)[p.member.class].Capped()
		seen := map[string]*window{}
		for _, rcv := range p.receivers() {
			tr := rcv.Track()
			r.mu.Lock()
			key := r.firstIDLocked(tr.StreamID()) + "/" + tr.Kind().String()
			r.mu.Unlock()
			w, ok := seen[key]
			if !ok {
				w = newWindow(counters0[key], counters1[key])
				seen[key] = w
			}
			for _, smp := range rcv.Drain() {
				if w.add(smp.Counter) && !capped {
					latencies = append(latencies, smp.Latency)
					if smp.PathLatency > 0 {
						paths = append(paths, smp.PathLatency)
					}
				}
			}
		}
		for key, src := range sources {
			if src.room != p.room || src.from == p.id {
				continue
			}
			w := seen[key]
			if w != nil {
				s.ReceivedPackets += w.n
			}
			if capped {
				if w != nil {
					s.ExpectedPackets += w.n
				}
			} else {
				s.ExpectedPackets += int64(counters1[key] - counters0[key])
			}
			if (w == nil || w.n == 0) && counters1[key] > counters0[key] {
				s.MissingTracks++
				// Whether the server offered it tells a negotiation bug from
				// a forwarding one.
				mid, dir := offeredIn(p.conn().PeerConnection(), src.from)
				var got []string
				for _, rcv := range p.receivers() {
					tr := rcv.Track()
					got = append(got, fmt.Sprintf("%s/%s(ssrc %d, %d pkts)", tr.StreamID(), tr.Kind(), tr.SSRC(), rcv.Stats().Packets))
				}
				r.log.Warn("a track never arrived", "server", r.cfg.Target.Name, "participant", p.id,
					"track", key, "offered_in_mid", mid, "client_direction", dir, "received", strings.Join(got, " "))
			}
		}
		// Join time is to the first packet received: a publisher alone in
		// its room has none to wait for.
		if p.step == step && r.expectedTracks(p) > 0 {
			s.Joins++
			if at, ok := p.firstPacket(); ok {
				joins = append(joins, at.Sub(p.joinStart))
			} else {
				s.JoinFailures++
			}
		}
	}
	if sc.Simulcast != nil {
		cams := r.simulcastWindow(parts, t0, t1, cuts, pauses0, pauses1, &s)
		for _, f := range cams {
			latencies = append(latencies, f.latencies...)
			paths = append(paths, f.paths...)
		}
	}
	lat, path, join := summarize(latencies), summarize(paths), summarize(joins)
	s.LatencyP50Ms, s.LatencyP99Ms, s.LatencyMaxMs = lat.P50, lat.P99, lat.Max
	s.PathLatencyP50Ms, s.PathLatencyP99Ms, s.PathLatencyMaxMs = path.P50, path.P99, path.Max
	s.JoinToFirstPacketP50Ms, s.JoinToFirstPacketP99Ms = join.P50, join.P99
	s.LossRatio = lossRatio(s.ExpectedPackets, s.ReceivedPackets)
	s.ForwardedPacketsPerSec = float64(s.ReceivedPackets) / s.Seconds
	if len(r.cfg.Target.PIDs) > 0 {
		cpu := cpu1 - cpu0
		s.ServerCPUSeconds = cpu.Seconds()
		s.ServerCores = cpu.Seconds() / s.Seconds
		s.CPUPerPacketUs = cpuPerPacketUs(cpu, s.ReceivedPackets)
		s.PacketsPerSecPerCore = packetsPerCoreSecond(cpu, s.ReceivedPackets)
		if s.Participants > 0 && rss > idleRSS {
			s.RSSPerParticipantBytes = (rss - idleRSS) / int64(s.Participants)
		}
	}
	for _, p := range parts {
		st := p.stats()
		s.Reconnects += st.Reconnects
		s.OutageSeconds += st.Outage.Seconds()
	}
	s.ClientCPUSeconds = (self1 - self0).Seconds()
	s.ClientCores = s.ClientCPUSeconds / s.Seconds
	return s, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	if r.cfg.ProgressInPlace {
		fmt.Fprintf(r.cfg.Progress, "\r%-100s", line)
		return
	}
	// The wait for media reports every 100 ms, mostly the same thing.
	if line != r.lastProgress {
		r.lastProgress = line
		fmt.Fprintln(r.cfg.Progress, line)
	}
}

func (r *runner) progressDone() {
	if r.cfg.Progress != nil && r.cfg.ProgressInPlace {
		fmt.Fprintf(r.cfg.Progress, "\r%-100s\r", "")
	}
}

// teardown stops the senders and closes every client, a few at a time.
func (r *runner) teardown() {
	r.progressDone()
	r.stopSend()
	r.mu.Lock()
	parts := r.parts
	r.parts = nil
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, p := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = p.close()
			p.wg.Wait()
		}()
	}
	wg.Wait()
	r.sendWG.Wait()
	r.http.CloseIdleConnections()
}

// offeredIn finds the media section of the server's last offer that
// carries a stream, and the direction of the client's transceiver there:
// what tells a negotiation bug from a forwarding one when a track never
// arrives.
func offeredIn(pc *webrtc.PeerConnection, streamID string) (mid, direction string) {
	rd := pc.RemoteDescription()
	if rd == nil {
		return "", "no remote description"
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(rd.SDP); err != nil {
		return "", err.Error()
	}
	for _, m := range d.MediaDescriptions {
		if v, ok := m.Attribute("msid"); ok && strings.HasPrefix(v, streamID+" ") {
			mid, _ = m.Attribute("mid")
			break
		}
	}
	if mid == "" {
		return "", "not offered"
	}
	for _, t := range pc.GetTransceivers() {
		if t.Mid() == mid {
			return mid, t.Direction().String()
		}
	}
	return mid, "no transceiver"
}
