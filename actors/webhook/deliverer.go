package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Store is the outbox the Deliverer drains. *persistence.Store is one.
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

var _ Store = (*persistence.Store)(nil)

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
	// InitialBackoff is the wait after a queue's first failed attempt;
	// each further failure doubles it, up to MaxBackoff. Each wait is
	// jittered to between half and all of its value, so that queues failing
	// together do not retry together. Zero means 1s and 5m.
	InitialBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds each attempt, response included. Zero means 10s.
	RequestTimeout time.Duration
	// MaxConcurrent bounds the attempts in flight. Zero means 32.
	MaxConcurrent int
	// MaxPerEndpoint bounds the attempts in flight to one scheme, host and
	// port, so that a slow endpoint cannot take every slot from the others.
	// Zero means 4.
	MaxPerEndpoint int
	// PollInterval is how often the outbox is read even without Notify.
	// Zero means 30s.
	PollInterval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock of event ages and signature times; nil means
	// time.Now. Backoff waits run on real timers.
	Now func() time.Time
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
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
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

// maxBurst is how many deliveries a worker makes in a row from one queue
// before it gives its slot back, so that busy queues take turns.
const maxBurst = 32

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

type queueKey struct{ room, endpoint string }

// queue is the scheduler's view of one outbox queue.
type queue struct {
	key    queueKey
	origin string // scheme://host:port, for MaxPerEndpoint
	head   *recordpb.WebhookEvent
	busy   bool // a worker owns the queue
	// The head's failed attempts so far, and when it may be tried again.
	attempts int
	retryAt  time.Time
}

// job is what a worker is given: a queue's head and its attempts so far.
type job struct {
	key      queueKey
	head     *recordpb.WebhookEvent
	attempts int
}

// result is what a worker reports when it gives its queue back.
type result struct {
	key queueKey
	// head is the queue's head now: the one that failed (retry), or the
	// next pending one, or nil when the queue is empty or unknown.
	head     *recordpb.WebhookEvent
	retry    bool // head failed and is to be retried after a backoff
	attempts int  // head's failed attempts, when retry
	storeErr bool // the outbox could not be read or written
}

// Run delivers until ctx is done, then cancels the attempts in flight and
// waits for them (an interrupted delivery stays pending, and is delivered
// again, with the same id, by the next Run). It returns nil when ctx is
// done, ErrRunning if Run is already running, or the error that closed the
// store.
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
	}()

	queues := make(map[queueKey]*queue)
	inFlight := make(map[string]int) // attempts in flight per origin
	total := 0
	// Workers never block on results: there are at most MaxConcurrent.
	results := make(chan result, d.cfg.MaxConcurrent)
	poll := time.NewTicker(d.cfg.PollInterval)
	defer poll.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	scan := true
	for {
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
				d.merge(queues, heads)
			}
		}

		now := time.Now()
		var wake time.Time
		for _, q := range queues {
			if q.busy || q.head == nil {
				continue
			}
			if q.retryAt.After(now) {
				if wake.IsZero() || q.retryAt.Before(wake) {
					wake = q.retryAt
				}
				continue
			}
			if total >= d.cfg.MaxConcurrent || inFlight[q.origin] >= d.cfg.MaxPerEndpoint {
				continue // a slot frees when a result comes in
			}
			q.busy = true
			total++
			inFlight[q.origin]++
			j := job{key: q.key, head: q.head, attempts: q.attempts}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- d.work(wctx, j)
			}()
		}
		timer.Stop()
		if !wake.IsZero() {
			timer.Reset(wake.Sub(now))
		}

		select {
		case <-ctx.Done():
			return nil
		case <-d.notify:
			scan = true
		case <-poll.C:
			scan = true
		case <-timer.C:
		case r := <-results:
			q := queues[r.key]
			q.busy = false
			total--
			if inFlight[q.origin]--; inFlight[q.origin] == 0 {
				delete(inFlight, q.origin)
			}
			switch {
			case r.storeErr:
				q.head = nil
				scan = true
			case r.retry:
				q.head, q.attempts = r.head, r.attempts
				q.retryAt = time.Now().Add(d.retryWait(r.head, r.attempts))
			case r.head != nil:
				q.head, q.attempts, q.retryAt = r.head, 0, time.Time{}
			default:
				delete(queues, r.key)
			}
		}
	}
}

// merge brings the scheduler's queues up to date with the outbox's heads.
// A queue a worker owns is left to the worker.
func (d *Deliverer) merge(queues map[queueKey]*queue, heads []*recordpb.WebhookEvent) {
	seen := make(map[queueKey]bool, len(heads))
	for _, h := range heads {
		k := queueKey{h.RoomId, h.Endpoint}
		seen[k] = true
		q := queues[k]
		if q == nil {
			q = &queue{key: k, origin: origin(h.Endpoint)}
			queues[k] = q
		}
		if q.busy {
			continue
		}
		if q.head == nil || q.head.Id != h.Id {
			q.head, q.attempts, q.retryAt = h, 0, time.Time{}
		}
	}
	for k, q := range queues {
		if !seen[k] && !q.busy {
			delete(queues, k)
		}
	}
}

// origin is the part of an endpoint that MaxPerEndpoint counts by.
func origin(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return u.Scheme + "://" + u.Host
}

// retryWait is the backoff after a head's attempts-th failure, jittered,
// and never past the moment the head reaches MaxAge (when it gets one last
// attempt).
func (d *Deliverer) retryWait(e *recordpb.WebhookEvent, attempts int) time.Duration {
	wait := d.cfg.InitialBackoff
	for i := 1; i < attempts && wait < d.cfg.MaxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, d.cfg.MaxBackoff)
	wait = wait/2 + rand.N(wait/2+1)
	left := d.cfg.MaxAge - d.cfg.Now().Sub(e.CreatedAt.AsTime())
	return max(min(wait, left), 0)
}

// work delivers from one queue, starting with j.head, until a delivery
// fails and is to be retried, the queue is empty, or maxBurst deliveries
// were made.
func (d *Deliverer) work(ctx context.Context, j job) result {
	e, attempts := j.head, j.attempts
	for range maxBurst {
		status, err := d.attempt(ctx, e)
		if ctx.Err() != nil {
			// Shutting down: the delivery stays pending for the next Run.
			return result{key: j.key, head: e, retry: true, attempts: attempts}
		}
		attempts++
		if err == nil {
			d.metrics.delivered.Inc()
			if err := d.cfg.Store.AckWebhookEvent(ctx, e); err != nil && !errors.Is(err, persistence.ErrNotFound) {
				d.log.Error("acknowledging a webhook delivery", "id", e.Id, "err", err)
				return result{key: j.key, storeErr: true}
			}
		} else {
			age := d.cfg.Now().Sub(e.CreatedAt.AsTime())
			permanent := errors.Is(err, ErrForbiddenAddress) || errors.Is(err, ErrInvalidEvent) || errors.Is(err, ErrInvalidEndpoint)
			if !permanent && age < d.cfg.MaxAge {
				d.metrics.retried.Inc()
				d.log.Debug("webhook delivery failed; will retry", "id", e.Id, "endpoint", e.Endpoint, "attempts", attempts, "err", err)
				return result{key: j.key, head: e, retry: true, attempts: attempts}
			}
			if err := d.fail(ctx, e, attempts, status, err); err != nil {
				d.log.Error("recording a failed webhook delivery", "id", e.Id, "err", err)
				return result{key: j.key, storeErr: true}
			}
		}
		next, err := d.cfg.Store.OutboxHead(ctx, e.RoomId, e.Endpoint)
		if errors.Is(err, persistence.ErrNotFound) {
			return result{key: j.key}
		}
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("reading the webhook outbox", "err", err)
			}
			return result{key: j.key, storeErr: true}
		}
		e, attempts = next, 0
	}
	return result{key: j.key, head: e}
}

// fail records e as failed after its last attempt.
func (d *Deliverer) fail(ctx context.Context, e *recordpb.WebhookEvent, attempts, status int, cause error) error {
	now := timestamppb.New(d.cfg.Now())
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
	req.Header.Set("Troupe-Signature", Sign(secret, d.cfg.Now(), b))
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
