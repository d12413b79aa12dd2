package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Store is the outbox the Deliverer drains: the part of persistence.Backend
// it calls, so every store of record is one.
type Store interface {
	// OutboxHeads returns the oldest pending delivery of every queue.
	OutboxHeads(ctx context.Context) ([]*recordpb.WebhookEvent, error)
	// OutboxHead returns the oldest pending delivery from a room to an
	// endpoint, or an error matching persistence.ErrNotFound.
	OutboxHead(ctx context.Context, roomID, endpoint string) (*recordpb.WebhookEvent, error)
	// AckWebhookEvent removes a delivered event.
	AckWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error
	// FailWebhookEvent moves an event given up on to the failed records.
	FailWebhookEvent(ctx context.Context, e *recordpb.WebhookEvent) error
	// WebhookBacklog returns the numbers of pending and failed deliveries.
	WebhookBacklog() (pending, failed int)
}

var _ Store = persistence.Backend(nil)

// Config configures a Deliverer. The zero value of every field but Store and
// DefaultSecret is valid.
type Config struct {
	// Store holds the outbox. Required.
	Store Store
	// DefaultSecret signs the deliveries that carry no secret of their
	// own: the server's API secret. Required.
	DefaultSecret []byte
	// Client posts the deliveries. Nil means the Client of
	// Guard{AllowPrivate, Resolver}; a given client is used as is, so its
	// dialer must do its own address checks.
	Client *http.Client
	// AllowPrivate lets deliveries go to loopback and private addresses
	// (--webhook-allow-private).
	AllowPrivate bool
	// Resolver resolves the endpoints' host names; nil means
	// net.DefaultResolver.
	Resolver *net.Resolver
	// MaxAge is how long after its event a delivery is retried before it is
	// kept as failed. Zero means 24h.
	MaxAge time.Duration
	// InitialBackoff is the wait after a queue's first failed attempt, and
	// after an endpoint's first attempt without a response; each further
	// failure doubles it, up to MaxBackoff. Each wait is jittered to
	// between half and all of its value, so that what fails together does
	// not retry together. Zero means 1s and 5m.
	InitialBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds each attempt, response included. Zero means 10s.
	RequestTimeout time.Duration
	// MaxConcurrent bounds the attempts in flight to endpoints whose last
	// attempt got a response. Zero means 32.
	MaxConcurrent int
	// MaxPerEndpoint bounds the attempts in flight to one scheme, host and
	// port that answers. Zero means 4.
	MaxPerEndpoint int
	// MaxProbing bounds the attempts in flight to the other endpoints, one
	// each: new ones, and those whose last attempt got no response (after a
	// backoff of their own). Zero means 64. At most MaxConcurrent +
	// MaxProbing attempts are ever in flight.
	MaxProbing int
	// StallAfter is how long an attempt waits for a response before its
	// endpoint counts as not answering: it gets one attempt at a time, as
	// a probe, until it answers again. A probe that waits longer is cut
	// short (and retried later) when another endpoint waits for a probing
	// slot. Zero means 1s.
	StallAfter time.Duration
	// PollInterval is how often the outbox is read even without Notify.
	// Zero means 30s.
	PollInterval time.Duration
	// Claims, in a cluster whose nodes share one outbox, gives this node
	// the rooms whose queues it delivers, one node at a time per room. Nil
	// means a node alone with its outbox, which delivers every queue.
	Claims Claims
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Clock gives event ages and signature times and runs the backoffs,
	// stalls and polls; nil means clock.System. RequestTimeout and the
	// measured duration of an attempt are real time: they bound and
	// measure the network.
	Clock clock.Clock
}

func (c *Config) ensureDefaults() error {
	if c.Store == nil {
		return errors.New("webhook: Config.Store is required")
	}
	if len(c.DefaultSecret) == 0 {
		return errors.New("webhook: Config.DefaultSecret is required")
	}
	for _, d := range []struct {
		v    *time.Duration
		def  time.Duration
		name string
	}{
		{&c.MaxAge, 24 * time.Hour, "MaxAge"},
		{&c.InitialBackoff, time.Second, "InitialBackoff"},
		{&c.MaxBackoff, 5 * time.Minute, "MaxBackoff"},
		{&c.RequestTimeout, 10 * time.Second, "RequestTimeout"},
		{&c.StallAfter, time.Second, "StallAfter"},
		{&c.PollInterval, 30 * time.Second, "PollInterval"},
	} {
		if *d.v < 0 {
			return fmt.Errorf("webhook: negative Config.%s", d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxBackoff < c.InitialBackoff {
		c.MaxBackoff = c.InitialBackoff
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 32
	}
	if c.MaxPerEndpoint <= 0 {
		c.MaxPerEndpoint = 4
	}
	if c.MaxProbing <= 0 {
		c.MaxProbing = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	return nil
}

// Deliverer drains the webhook outbox. Create it with New, run it with Run,
// and call Notify after queuing deliveries.
type Deliverer struct {
	cfg        Config
	ownsClient bool
	log        *slog.Logger
	notify     chan struct{}
	running    atomic.Bool
	metrics    metrics
}

// New returns a Deliverer; it registers its metrics with cfg.Registerer.
func New(cfg Config) (*Deliverer, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	d := &Deliverer{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "webhook"),
		notify: make(chan struct{}, 1),
	}
	if d.cfg.Client == nil {
		d.cfg.Client, d.ownsClient = Guard{AllowPrivate: cfg.AllowPrivate, Resolver: cfg.Resolver}.Client(), true
	}
	d.metrics = newMetrics(cfg.Store)
	if cfg.Registerer != nil {
		if err := d.metrics.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Notify wakes the Deliverer to read the outbox: call it after queuing
// deliveries. It never blocks; notifications while one is pending merge.
func (d *Deliverer) Notify() {
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// job is what a worker is given: a queue's head and its attempts so far.
type job struct {
	key      queueKey
	head     *recordpb.WebhookEvent
	attempts int
}

// result is what a worker reports when its attempt ends.
type result struct {
	key queueKey
	// head is the queue's head now: the one that failed (retry), or the
	// next pending one, or nil when the queue is empty or unknown.
	head     *recordpb.WebhookEvent
	retry    bool // head failed and is to be retried after a backoff
	attempts int  // head's failed attempts, when retry
	storeErr bool // the outbox could not be read or written
	reach    reach
}

// errCut is the error of an attempt cut short: it waited StallAfter
// without a response while other endpoints waited for its slot.
var errCut = errors.New("no response in time while other endpoints waited")

// Run delivers until ctx is done, then cancels the attempts in flight and
// waits for them (an interrupted delivery stays pending, and is delivered
// again, with the same id, by the next Run). The claims it holds stay with
// the node until it claims their rooms again, or its lease ends. It returns
// nil when ctx is done, ErrRunning if Run is already running, or the error
// that closed the store.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	if d.ownsClient {
		defer d.cfg.Client.CloseIdleConnections()
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		d.metrics.inFlight.Reset()
	}()

	s := newScheduler(&d.cfg)
	h := newHolder(d.cfg.Claims, wctx)
	defer h.stop()
	var freed <-chan struct{} // nil on a node alone
	if h.claims != nil {
		freed = h.claims.Freed()
	}
	// Workers never block on results: at most MaxConcurrent + MaxProbing
	// attempts are in flight.
	results := make(chan result, d.cfg.MaxConcurrent+d.cfg.MaxProbing)
	start := func(f *flight) {
		// Under the claims' context: the attempt stops, and settles
		// nothing, once they are lost.
		run := h.ctx
		fctx, fcancel := context.WithCancel(run)
		f.cancel = fcancel
		j := job{key: f.q.key, head: f.q.head, attempts: f.q.attempts}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- d.work(run, fctx, j)
		}()
	}
	// One timer on the clock wakes the loop at the scheduler's next due
	// time or the next poll, whichever comes first; it is armed again only
	// when that time changes. A wake from a timer already stopped costs one
	// more turn of the loop, nothing else.
	clk := d.cfg.Clock
	woke := make(chan struct{}, 1)
	ring := func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	}
	var wakeTimer clock.Timer
	var wakeAt time.Time
	defer func() {
		if wakeTimer != nil {
			wakeTimer.Stop()
		}
	}()
	nextPoll := clk.Now().Add(d.cfg.PollInterval)

	scan := true
	for {
		if now := clk.Now(); !now.Before(nextPoll) {
			scan, nextPoll = true, now.Add(d.cfg.PollInterval)
		}
		if scan {
			scan = false
			heads, err := d.cfg.Store.OutboxHeads(ctx)
			switch {
			case errors.Is(err, persistence.ErrClosed):
				return fmt.Errorf("webhook: %w", err)
			case ctx.Err() != nil:
				return nil
			case err != nil:
				// Try again at the next poll.
				d.log.Error("reading the webhook outbox", "err", err)
			default:
				heads, dropped, err := d.claimed(ctx, h, heads)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					// Try again at the next poll, or when a claim goes.
					d.log.Warn("claiming webhook queues", "err", err)
					break
				}
				now := clk.Now()
				d.drop(s, dropped, now)
				s.merge(heads, now)
				s.takeEmptied() // among the held rooms, all looked at here
				d.releaseIdle(ctx, h, s, h.heldRooms())
			}
		}

		now := clk.Now()
		// Set before the attempts start: what an attempt's endpoint sees
		// comes after the queue and the claim it was made under.
		d.metrics.queues.Set(float64(len(s.queues)))
		d.metrics.claimed.Set(float64(len(h.held)))
		s.stallOverdue(now)
		s.dispatch(now, start)
		d.metrics.inFlight.WithLabelValues("answering").Set(float64(s.answering))
		d.metrics.inFlight.WithLabelValues("probing").Set(float64(s.probing))
		wake := s.wake(now)
		if wake.IsZero() || nextPoll.Before(wake) {
			wake = nextPoll
		}
		if !wake.Equal(wakeAt) {
			if wakeTimer != nil {
				wakeTimer.Stop()
			}
			wakeAt, wakeTimer = wake, clk.AfterFunc(wake.Sub(now), ring)
		}

		select {
		case <-ctx.Done():
			return nil
		case <-d.notify:
			scan = true
		case <-freed:
			scan = true
		case <-h.lost:
			if rooms := h.lose(); len(rooms) > 0 {
				d.log.Warn("lost the claims of rooms' webhook deliveries: stopped delivering them", "rooms", len(rooms))
				d.drop(s, rooms, clk.Now())
			}
		case <-woke:
			wakeAt = time.Time{} // its timer has run: arm the next
		case r := <-results:
			// With the results already in, so that the queues emptied
			// together release their claims together.
			for more := true; more; {
				if s.finish(r, clk.Now(), d.retryWait) {
					scan = true
				}
				select {
				case r = <-results:
				default:
					more = false
				}
			}
			d.releaseIdle(ctx, h, s, s.takeEmptied())
		}
	}
}

// drop forgets the queues of rooms whose claims this node lost.
func (d *Deliverer) drop(s *scheduler, rooms []string, now time.Time) {
	if len(rooms) == 0 {
		return
	}
	set := make(map[string]bool, len(rooms))
	for _, r := range rooms {
		set[r] = true
	}
	s.drop(set, now)
	d.metrics.claimsLost.Add(float64(len(rooms)))
	s.takeEmptied() // not held: nothing to release
}

// retryWait is the backoff after a head's attempts-th failure, jittered,
// and never past the moment the head reaches MaxAge (when it gets one last
// attempt).
func (d *Deliverer) retryWait(e *recordpb.WebhookEvent, attempts int) time.Duration {
	wait := backoff(&d.cfg, attempts)
	left := d.cfg.MaxAge - d.cfg.Clock.Now().Sub(e.CreatedAt.AsTime())
	return max(min(wait, left), 0)
}

// work makes one attempt at j's head, within ctx, and reads the queue's
// next head after a success or a final failure. run is Run's context: when
// it is done the delivery stays pending as it was.
func (d *Deliverer) work(run, ctx context.Context, j job) result {
	e, attempts := j.head, j.attempts
	status, err := d.attempt(ctx, e)
	if run.Err() != nil {
		return result{key: j.key, head: e, retry: true, attempts: attempts}
	}
	attempts++
	reached := reachAnswered
	switch {
	case status != 0:
	case errors.Is(err, ErrForbiddenAddress) || errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrInvalidEndpoint):
		reached = reachNothing
	default:
		reached = reachSilent
		if ctx.Err() != nil {
			err = errCut
		}
	}
	if err == nil {
		d.metrics.delivered.Inc()
		if err := d.cfg.Store.AckWebhookEvent(run, e); err != nil && !errors.Is(err, persistence.ErrNotFound) {
			d.log.Error("acknowledging a webhook delivery", "id", e.Id, "err", err)
			return result{key: j.key, storeErr: true, reach: reached}
		}
	} else {
		age := d.cfg.Clock.Now().Sub(e.CreatedAt.AsTime())
		if reached != reachNothing && age < d.cfg.MaxAge {
			d.metrics.retried.Inc()
			d.log.Debug("webhook delivery failed; will retry", "id", e.Id, "endpoint", e.Endpoint, "attempts", attempts, "err", err)
			return result{key: j.key, head: e, retry: true, attempts: attempts, reach: reached}
		}
		if err := d.fail(run, e, attempts, status, err); err != nil {
			d.log.Error("recording a failed webhook delivery", "id", e.Id, "err", err)
			return result{key: j.key, storeErr: true, reach: reached}
		}
	}
	next, err := d.cfg.Store.OutboxHead(run, e.RoomId, e.Endpoint)
	if errors.Is(err, persistence.ErrNotFound) {
		return result{key: j.key, reach: reached}
	}
	if err != nil {
		if run.Err() == nil {
			d.log.Error("reading the webhook outbox", "err", err)
		}
		return result{key: j.key, storeErr: true, reach: reached}
	}
	return result{key: j.key, head: next, reach: reached}
}

// fail records e as failed after its last attempt.
func (d *Deliverer) fail(ctx context.Context, e *recordpb.WebhookEvent, attempts, status int, cause error) error {
	now := timestamppb.New(d.cfg.Clock.Now())
	rec := proto.Clone(e).(*recordpb.WebhookEvent)
	rec.Attempts = uint32(attempts)
	rec.LastAttemptAt = now
	rec.LastError = cause.Error()
	rec.LastStatus = uint32(status)
	rec.FailedAt = now
	if err := d.cfg.Store.FailWebhookEvent(ctx, rec); err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return err
	}
	d.metrics.failed.Inc()
	d.log.Warn("webhook delivery failed for good", "id", e.Id, "event", e.Event, "room", e.RoomId,
		"endpoint", e.Endpoint, "attempts", attempts, "err", cause)
	return nil
}

// statusError is a response outside 2xx.
type statusError struct{ code int }

func (e statusError) Error() string {
	return fmt.Sprintf("status %d %s", e.code, http.StatusText(e.code))
}

// maxResponseRead is how much of a response body is read (and dropped) so
// that the connection can be reused.
const maxResponseRead = 64 << 10

// attempt posts e once. It returns the response's status (0 without a
// response) and nil for a 2xx.
func (d *Deliverer) attempt(ctx context.Context, e *recordpb.WebhookEvent) (int, error) {
	if _, err := parseEndpoint(e.Endpoint); err != nil {
		return 0, err
	}
	b, err := body(e)
	if err != nil {
		return 0, err
	}
	secret := d.cfg.DefaultSecret
	if e.Secret != "" {
		secret = []byte(e.Secret)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.Endpoint, bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalidEndpoint, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Troupe-Webhook/1")
	req.Header.Set("Troupe-Event", e.Event)
	req.Header.Set("Troupe-Delivery", e.Id)
	req.Header.Set("Troupe-Signature", Sign(secret, d.cfg.Clock.Now(), b))
	start := time.Now()
	resp, err := d.cfg.Client.Do(req)
	d.metrics.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			// Kept with the failed delivery: say what is wrong with the
			// endpoint, not where the resolver is.
			return 0, resolveError(req.URL.Hostname(), err)
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, statusError{resp.StatusCode}
	}
	return resp.StatusCode, nil
}
