package rtc

// This file owns the relay of data messages between a room's participants.
// Like media, a message never passes through an actor's mailbox: the
// sender's data channel callback (a pion goroutine) checks it, encodes it
// once, and puts it on each receiver's bounded queue; each receiver has a
// writer goroutine of its own that sends on its data channel. A slow
// receiver drops (counted) and never holds up the sender or the others.
// The room owns the DataRelay; each participant's peer has a DataEndpoint.

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/troupe-media/troupe/internal/clock"
)

// Defaults of a DataRelayConfig.
const (
	DefaultDataMessagesPerSecond = 20
	DefaultDataBytesPerSecond    = 256 << 10
	DefaultDataQueue             = 256
	DefaultDataMaxBuffered       = 1 << 20
)

// DataRelayConfig configures a DataRelay. The zero value is valid.
type DataRelayConfig struct {
	// MessagesPerSecond and BytesPerSecond are each participant's rate;
	// the burst is one second's worth (and at least one largest message
	// for the bytes). Excess messages are dropped and counted.
	// Defaults: DefaultDataMessagesPerSecond, DefaultDataBytesPerSecond.
	MessagesPerSecond float64
	BytesPerSecond    int
	// Queue bounds the messages waiting for each receiver's writer;
	// default DefaultDataQueue.
	Queue int
	// MaxBuffered bounds what a receiver's data channel may hold unsent
	// before further messages to it are dropped; default
	// DefaultDataMaxBuffered.
	MaxBuffered uint64
	// Intercept, when set, sees each valid message a participant sends
	// before it is relayed; if it returns true the message is its own (the
	// owner handles chat this way) and is not relayed. It runs on pion's
	// goroutines and must return at once.
	Intercept func(from DataSender, msg DataMessage) bool
	Metrics   *DataMetrics
	// Clock paces the rate limits; default the system clock.
	Clock  clock.Clock
	Logger *slog.Logger
}

// DataRelay relays data messages between the endpoints of one room. Its
// methods are safe for concurrent use.
type DataRelay struct {
	cfg DataRelayConfig
	mu  sync.Mutex // serialises changes of endpoints
	// endpoints maps participant id to endpoint: a map replaced, never
	// changed, so that senders read it without a lock.
	endpoints atomic.Pointer[map[string]*DataEndpoint]
}

// NewDataRelay returns a relay with no endpoints.
func NewDataRelay(cfg DataRelayConfig) *DataRelay {
	if cfg.MessagesPerSecond <= 0 {
		cfg.MessagesPerSecond = DefaultDataMessagesPerSecond
	}
	if cfg.BytesPerSecond <= 0 {
		cfg.BytesPerSecond = DefaultDataBytesPerSecond
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultDataQueue
	}
	if cfg.MaxBuffered == 0 {
		cfg.MaxBuffered = DefaultDataMaxBuffered
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &DataRelay{cfg: cfg}
	r.endpoints.Store(&map[string]*DataEndpoint{})
	return r
}

// Join adds the endpoint of participant from.ID and starts its writer;
// Close it when the participant leaves. onRefused, which may be nil, is
// told why a message of the participant's was refused (not of those
// dropped over its rate): on pion's goroutine, and it must return at once.
func (r *DataRelay) Join(from DataSender, onRefused func(error)) *DataEndpoint {
	if onRefused == nil {
		onRefused = func(error) {}
	}
	burstBytes := max(r.cfg.BytesPerSecond, MaxReliableMessage)
	e := &DataEndpoint{
		relay: r, from: from, onRefused: onRefused,
		msgs:  rate.NewLimiter(rate.Limit(r.cfg.MessagesPerSecond), max(1, int(r.cfg.MessagesPerSecond))),
		bytes: rate.NewLimiter(rate.Limit(r.cfg.BytesPerSecond), burstBytes),
		queue: make(chan outFrame, r.cfg.Queue),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	r.mu.Lock()
	cur := *r.endpoints.Load()
	next := make(map[string]*DataEndpoint, len(cur)+1)
	for id, o := range cur {
		next[id] = o
	}
	old := next[from.ID]
	next[from.ID] = e
	r.endpoints.Store(&next)
	r.mu.Unlock()
	go e.write()
	if old != nil {
		old.Close() // after the unlock: its leave takes r.mu, and finds it replaced
	}
	return e
}

func (r *DataRelay) leave(e *DataEndpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.endpoints.Load()
	if cur[e.from.ID] != e {
		return
	}
	next := make(map[string]*DataEndpoint, len(cur))
	for id, o := range cur {
		if o != e {
			next[id] = o
		}
	}
	r.endpoints.Store(&next)
}

// Send relays msg from from (the zero DataSender: the server) to the
// participants it names, or to every participant but the sender. It
// returns the receivers it was queued for; a named participant not in the
// room fails it with ErrUnknownTarget, and nothing is sent.
func (r *DataRelay) Send(from DataSender, msg DataMessage) (int, error) {
	frame, err := encodeRelayed(from, msg)
	if err != nil {
		return 0, err
	}
	if len(frame) > dataLimit(msg.Lossy) {
		return 0, fmt.Errorf("%w: %d bytes with the sender's tags, over %d", ErrDataTooLarge, len(frame), dataLimit(msg.Lossy))
	}
	eps := *r.endpoints.Load()
	out := outFrame{data: frame, text: msg.Text, lossy: msg.Lossy}
	r.cfg.Metrics.relayed()
	if len(msg.To) > 0 {
		targets := make([]*DataEndpoint, 0, len(msg.To))
		for _, id := range msg.To {
			e, ok := eps[id]
			if !ok {
				return 0, fmt.Errorf("%w: %q", ErrUnknownTarget, id)
			}
			targets = append(targets, e)
		}
		n := 0
		for _, e := range targets {
			if e.enqueue(out) {
				n++
			}
		}
		return n, nil
	}
	n := 0
	for id, e := range eps {
		if id != from.ID && e.enqueue(out) {
			n++
		}
	}
	return n, nil
}

// outFrame is one relayed frame on its way to a receiver; data is shared
// by every receiver and never changed.
type outFrame struct {
	data        []byte
	text, lossy bool
}

// DataEndpoint is one participant's side of the relay: its data channels,
// the limits on what it sends, and the queue and writer of what it
// receives.
type DataEndpoint struct {
	relay     *DataRelay
	from      DataSender
	onRefused func(error)

	msgs, bytes *rate.Limiter
	// silenced: what the participant sends is refused (it lacks the grant);
	// it still receives.
	silenced atomic.Bool

	// reliable and lossy are the channels the client opened, once open.
	reliable, lossy atomic.Pointer[webrtc.DataChannel]

	queue     chan outFrame
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// SetMaySend allows or refuses what the participant sends from now on; it
// receives either way. An endpoint may send until told otherwise.
func (e *DataEndpoint) SetMaySend(ok bool) { e.silenced.Store(!ok) }

// AcceptData has the peer's client open its data channels to e: the
// channels labelled DataLabelReliable and DataLabelLossy carry data
// messages; any other is closed. Call it before the first offer applies.
func (p *Peer) AcceptData(e *DataEndpoint) {
	p.pc.OnDataChannel(e.attach)
}

func (e *DataEndpoint) attach(dc *webrtc.DataChannel) {
	var slot *atomic.Pointer[webrtc.DataChannel]
	lossy := false
	switch {
	case dc.Label() == DataLabelReliable && dc.Ordered() && dc.MaxRetransmits() == nil && dc.MaxPacketLifeTime() == nil:
		slot = &e.reliable
	case dc.Label() == DataLabelLossy && !dc.Ordered() && dc.MaxRetransmits() != nil && *dc.MaxRetransmits() == 0:
		slot, lossy = &e.lossy, true
	default:
		e.relay.cfg.Logger.Info("data channel refused", "participant", e.from.ID, "label", dc.Label())
		e.onRefused(fmt.Errorf("%w: a data channel is %q (ordered, reliable) or %q (unordered, maxRetransmits 0); %q is closed",
			ErrBadDataMessage, DataLabelReliable, DataLabelLossy, dc.Label()))
		_ = dc.Close()
		return
	}
	dc.OnOpen(func() {
		if old := slot.Swap(dc); old != nil && old != dc {
			_ = old.Close() // a client that opens a second one replaces the first
		}
	})
	dc.OnClose(func() { slot.CompareAndSwap(dc, nil) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { e.receive(m.Data, m.IsString, lossy) })
}

// receive takes a frame the client sent: limits, then framing, then the
// relay. Over its rate a frame is dropped and counted, and the client is
// not told (that would be a flood of its own); other refusals are told.
func (e *DataEndpoint) receive(frame []byte, text, lossy bool) {
	m := e.relay.cfg.Metrics
	m.received()
	now := e.relay.cfg.Clock.Now()
	if !e.msgs.AllowN(now, 1) {
		m.drop(dropRate)
		return
	}
	if e.silenced.Load() {
		m.drop(dropNotAllowed)
		e.onRefused(ErrDataNotAllowed)
		return
	}
	if len(frame) > dataLimit(lossy) {
		m.drop(dropTooLarge)
		e.onRefused(fmt.Errorf("%w: %d bytes, over %d on this channel", ErrDataTooLarge, len(frame), dataLimit(lossy)))
		return
	}
	if !e.bytes.AllowN(now, len(frame)) {
		m.drop(dropRate)
		return
	}
	msg, err := ParseDataMessage(frame, text)
	if err != nil {
		m.drop(dropInvalid)
		e.onRefused(err)
		return
	}
	msg.Lossy = lossy
	if ic := e.relay.cfg.Intercept; ic != nil && ic(e.from, msg) {
		return
	}
	if _, err := e.relay.Send(e.from, msg); err != nil {
		m.drop(dropInvalid)
		e.onRefused(err)
	}
}

// enqueue queues f for this receiver, or drops it if the queue is full or
// the receiver has no channel open that takes it: a lossy frame goes on
// either channel, a reliable one only on the reliable channel. It never
// blocks.
func (e *DataEndpoint) enqueue(f outFrame) bool {
	if e.reliable.Load() == nil && (!f.lossy || e.lossy.Load() == nil) {
		return false // the client takes no such data messages (yet)
	}
	select {
	case e.queue <- f:
		return true
	default:
		e.relay.cfg.Metrics.drop(dropQueueFull)
		return false
	}
}

// write sends the queued frames until Close. A lossy frame goes on the
// lossy channel if the client opened one, else on the reliable one; a
// reliable frame only on the reliable one.
func (e *DataEndpoint) write() {
	defer close(e.done)
	m := e.relay.cfg.Metrics
	for {
		select {
		case <-e.stop:
			return
		case f := <-e.queue:
			dc := e.reliable.Load()
			if f.lossy {
				if l := e.lossy.Load(); l != nil {
					dc = l
				}
			}
			if dc == nil {
				m.drop(dropNoChannel)
				continue
			}
			if dc.BufferedAmount() > e.relay.cfg.MaxBuffered {
				m.drop(dropSlowReceiver)
				continue
			}
			var err error
			if f.text {
				err = dc.SendText(string(f.data))
			} else {
				err = dc.Send(f.data)
			}
			if err != nil {
				m.drop(dropNoChannel)
				if !errors.Is(err, webrtc.ErrConnectionClosed) {
					e.relay.cfg.Logger.Debug("data send", "participant", e.from.ID, "err", err)
				}
				continue
			}
			m.delivered(len(f.data))
		}
	}
}

// Close takes the endpoint out of its relay and stops its writer; frames
// still queued are dropped. The data channels close with the peer.
func (e *DataEndpoint) Close() {
	e.closeOnce.Do(func() {
		e.relay.leave(e)
		close(e.stop)
		<-e.done
	})
}

// DataMetrics counts data messages into atomics, read when scraped.
// Register it once and hand it to every DataRelayConfig; a nil
// *DataMetrics records nothing.
type DataMetrics struct {
	receivedN, relayedN, deliveredN, deliveredBytes atomic.Uint64
	drops                                           [len(dropReasons)]atomic.Uint64

	receivedD, relayedD, deliveredD, bytesD, droppedD *prometheus.Desc
}

// Drop reasons of troupe_data_messages_dropped_total: the first three,
// and not_allowed, on the sender's side, the others per receiver.
const (
	dropRate = iota
	dropTooLarge
	dropInvalid
	dropQueueFull
	dropSlowReceiver
	dropNoChannel
	dropNotAllowed
)

var dropReasons = [...]string{"rate", "too_large", "invalid", "queue_full", "slow_receiver", "no_channel", "not_allowed"}

// NewDataMetrics returns the data message counters.
func NewDataMetrics() *DataMetrics {
	return &DataMetrics{
		receivedD:  prometheus.NewDesc("troupe_data_messages_received_total", "Data messages received from participants.", nil, nil),
		relayedD:   prometheus.NewDesc("troupe_data_messages_relayed_total", "Data messages relayed, once each whatever the number of receivers; the server's included.", nil, nil),
		deliveredD: prometheus.NewDesc("troupe_data_messages_delivered_total", "Data messages sent to receivers, one per receiver.", nil, nil),
		bytesD:     prometheus.NewDesc("troupe_data_bytes_delivered_total", "Bytes of data messages sent to receivers.", nil, nil),
		droppedD: prometheus.NewDesc("troupe_data_messages_dropped_total",
			"Data messages not relayed (rate, too_large, invalid, not_allowed) or not delivered to a receiver (queue_full, slow_receiver, no_channel).", []string{"reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *DataMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.receivedD, m.relayedD, m.deliveredD, m.bytesD, m.droppedD} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *DataMetrics) Collect(ch chan<- prometheus.Metric) {
	c := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	c(m.receivedD, m.receivedN.Load())
	c(m.relayedD, m.relayedN.Load())
	c(m.deliveredD, m.deliveredN.Load())
	c(m.bytesD, m.deliveredBytes.Load())
	for i, r := range dropReasons {
		c(m.droppedD, m.drops[i].Load(), r)
	}
}

// Dropped returns the drops counted for reason so far ("rate",
// "too_large"...).
func (m *DataMetrics) Dropped(reason string) uint64 {
	for i, r := range dropReasons {
		if m != nil && r == reason {
			return m.drops[i].Load()
		}
	}
	return 0
}

// Delivered returns the messages sent to receivers so far.
func (m *DataMetrics) Delivered() uint64 {
	if m == nil {
		return 0
	}
	return m.deliveredN.Load()
}

func (m *DataMetrics) received() {
	if m != nil {
		m.receivedN.Add(1)
	}
}

func (m *DataMetrics) relayed() {
	if m != nil {
		m.relayedN.Add(1)
	}
}

func (m *DataMetrics) delivered(n int) {
	if m != nil {
		m.deliveredN.Add(1)
		m.deliveredBytes.Add(uint64(n))
	}
}

func (m *DataMetrics) drop(reason int) {
	if m != nil {
		m.drops[reason].Add(1)
	}
}
