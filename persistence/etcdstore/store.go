package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
)

// Config configures New. Its zero value is not enough: a Store needs an
// etcd to talk to (Client or Endpoints).
type Config struct {
	// Client is the etcd client to use; the Store does not close it. Nil
	// means a client of the Store's own on Endpoints, closed by Close.
	Client *clientv3.Client
	// Endpoints are the etcd members' client URLs, used when Client is nil.
	Endpoints []string
	// DialTimeout bounds the connection of a client the Store makes. Zero
	// means 5s.
	DialTimeout time.Duration
	// Prefix is put before every key, so that several deployments (or test
	// runs) share one etcd without seeing each other's records; no prefix
	// in use may start with another ("a/" and "a/b/" would mix). Zero
	// means "troupe/".
	Prefix string
	// IdempotencyTTL is how long an idempotency record answers a retried
	// request. Zero means 24h.
	IdempotencyTTL time.Duration
	// Clock gives idempotency records their age; nil means clock.System.
	Clock clock.Clock
	// Logger receives the Store's messages. Nil means slog.Default(). The
	// etcd client the Store makes logs nothing.
	Logger *slog.Logger

	// NodeID, when set, makes the Store a cluster node's: it holds a lease
	// (Register), claims rooms (Claim), and every room write it makes
	// (Apply) is fenced by ownership. Empty means a Store without
	// ownership, whose writes are not fenced: for tools and tests.
	NodeID string
	// LeaseTTL is how long the node's lease outlives its last keep-alive:
	// how long a node cut off from etcd keeps its rooms, and so how long
	// its rooms wait for another owner after it died. Whole seconds,
	// rounded up. Zero means 10s.
	LeaseTTL time.Duration
}

const (
	defaultPrefix         = "troupe/"
	defaultIdempotencyTTL = 24 * time.Hour
	defaultDialTimeout    = 5 * time.Second
	defaultLeaseTTL       = 10 * time.Second

	// closeTimeout bounds how long Close waits for etcd to revoke the
	// node's lease: an unreachable etcd lets the lease expire on its own.
	closeTimeout = 5 * time.Second
	// getBatch is how many reads one read-only transaction holds, below
	// etcd's default limit of 128 operations per transaction.
	getBatch = 64
	// maxAttempts bounds how often a write is retried after losing the
	// race for the records it read (see Apply).
	maxAttempts = 100
)

// Store is a persistence.Backend on etcd. Its methods are safe for
// concurrent use.
type Store struct {
	cli     *clientv3.Client
	ownCli  bool // cli was made by New, and Close closes it
	k       keys
	log     *slog.Logger
	idemTTL time.Duration
	now     func() time.Time

	node     string
	leaseTTL int64 // seconds

	// gate is entered by every operation while it runs; Close shuts it,
	// which waits for the operations in flight.
	gate persistence.Gate

	closeOnce sync.Once
	closeErr  error
	bg        context.Context // done at Close: ends the goroutines below
	stop      context.CancelFunc
	wg        sync.WaitGroup // the backlog watch and the lease keep-alive

	backlog backlog
	leases  idemLeases
	// lastRev is the newest store revision a ClaimCreate saw: where the
	// next one takes its Seq from.
	lastRev atomic.Int64

	// registerMu makes Register one at a time; it is held across Register's
	// calls to etcd, leaseMu never is, so that a Register waiting on an
	// etcd out of reach holds up nobody who only reads the lease.
	registerMu sync.Mutex
	leaseMu    sync.Mutex
	lease      *Lease // guarded by leaseMu; nil before Register
	// registered is closed, and cleared, by Register when it grants a
	// lease: those waiting for one (waitLease) wait on it. Guarded by
	// leaseMu.
	registered chan struct{}
}

var _ persistence.Backend = (*Store)(nil)

// New connects to etcd, checks (or writes) the layout version under the
// prefix and counts the webhook backlog.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.IdempotencyTTL < 0 || cfg.LeaseTTL < 0 || cfg.DialTimeout < 0 {
		return nil, fmt.Errorf("%w: negative duration in etcdstore.Config", persistence.ErrInvalid)
	}
	if cfg.Client == nil && len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: etcdstore.Config needs a Client or Endpoints", persistence.ErrInvalid)
	}
	s := &Store{
		cli:      cfg.Client,
		k:        keys{p: cmp(cfg.Prefix, defaultPrefix)},
		log:      cmp(cfg.Logger, slog.Default()).With("component", "etcdstore"),
		idemTTL:  cmp(cfg.IdempotencyTTL, defaultIdempotencyTTL),
		now:      cmp[clock.Clock](cfg.Clock, clock.System{}).Now,
		node:     cfg.NodeID,
		leaseTTL: int64((cmp(cfg.LeaseTTL, defaultLeaseTTL) + time.Second - 1) / time.Second),
	}
	if s.cli == nil {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   cfg.Endpoints,
			DialTimeout: cmp(cfg.DialTimeout, defaultDialTimeout),
			Logger:      zap.NewNop(),
			// No Context: the client outlives the ctx of New.
		})
		if err != nil {
			return nil, fmt.Errorf("etcdstore: connect to %v: %w", cfg.Endpoints, err)
		}
		s.cli, s.ownCli = cli, true
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	if err := s.init(ctx); err != nil {
		s.stop()
		if s.ownCli {
			err = errors.Join(err, s.cli.Close())
		}
		return nil, err
	}
	return s, nil
}

// cmp returns v, or def if v is the zero value.
func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (s *Store) init(ctx context.Context) error {
	key := s.k.layout()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string([]byte{layoutVersion}))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("etcdstore: read layout version: %w", err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) != 1 || string(kvs[0].Value) != string([]byte{layoutVersion}) {
			var got []byte
			if len(kvs) == 1 {
				got = kvs[0].Value
			}
			return &persistence.CorruptError{Kind: persistence.KindMeta, Key: key,
				Err: fmt.Errorf("%w: layout %x (this build reads %d)", persistence.ErrUnknownSchema, got, layoutVersion)}
		}
	}
	rev, err := s.countBacklog(ctx)
	if err != nil {
		return err
	}
	s.wg.Add(1)
	go s.watchBacklog(rev)
	return nil
}

// NodeID returns Config.NodeID.
func (s *Store) NodeID() string { return s.node }

// Close waits for the operations in flight, stops following the backlog,
// revokes the node's lease (so that its rooms are free at once rather than
// after LeaseTTL) and closes the client the Store made. Later operations
// return persistence.ErrClosed. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.gate.Shut(nil)

		s.leaseMu.Lock()
		l := s.lease
		s.leaseMu.Unlock()
		s.stop()
		s.wg.Wait()
		var errs []error
		// A lost lease is gone already; and etcd, if it let the lease go
		// unrenewed, may be unreachable.
		if l != nil && l.Err() == persistence.ErrClosed {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			if _, err := s.cli.Revoke(ctx, l.id); err != nil && !errors.Is(err, errLeaseNotFound) {
				errs = append(errs, fmt.Errorf("etcdstore: revoke lease: %w", err))
			}
			cancel()
		}
		if s.ownCli {
			if err := s.cli.Close(); err != nil {
				errs = append(errs, fmt.Errorf("etcdstore: close client: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// enter starts an operation: it returns the context's error, or
// persistence.ErrClosed after Close. On success the caller calls s.leave.
func (s *Store) enter(ctx context.Context) error { return s.gate.Enter(ctx) }

func (s *Store) leave() { s.gate.Leave() }

// getMany reads keys at one revision (rev, or the current one if rev is 0),
// in read-only transactions of getBatch reads, and returns the values found
// by key and the revision read.
func (s *Store) getMany(ctx context.Context, rev int64, keys []string) (map[string]*mvccpb.KeyValue, int64, error) {
	found := make(map[string]*mvccpb.KeyValue, len(keys))
	for len(keys) > 0 || rev == 0 {
		n := min(len(keys), getBatch)
		ops := make([]clientv3.Op, n)
		for i, k := range keys[:n] {
			ops[i] = clientv3.OpGet(k, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				found[string(kv.Key)] = kv
			}
		}
		keys = keys[n:]
	}
	return found, rev, nil
}

// pageKeys reads the keys (not the values) of the range of prefix at one
// revision, skipping offset of them and keeping up to limit (zero or less:
// all), and returns them with the number of keys in the whole range and the
// revision read. etcd cannot skip by position, so the skipped keys are
// read too: a page costs its offset in keys transferred, though no values.
func (s *Store) pageKeys(ctx context.Context, prefix string, offset, limit int) ([]string, int, int64, error) {
	offset = max(offset, 0)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}
	if limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(offset)+int64(limit)))
	}
	resp, err := s.cli.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, 0, 0, err
	}
	var page []string
	if offset < len(resp.Kvs) {
		page = make([]string, 0, len(resp.Kvs)-offset)
		for _, kv := range resp.Kvs[offset:] {
			page = append(page, string(kv.Key))
		}
	}
	return page, int(resp.Count), resp.Header.Revision, nil
}

// rangePage reads a page of the range of prefix with the values: like
// pageKeys, then the page's values from the same revision.
func (s *Store) rangePage(ctx context.Context, prefix string, offset, limit int) ([]*mvccpb.KeyValue, int, error) {
	if offset <= 0 {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if limit > 0 {
			opts = append(opts, clientv3.WithLimit(int64(limit)))
		}
		resp, err := s.cli.Get(ctx, prefix, opts...)
		if err != nil {
			return nil, 0, err
		}
		return resp.Kvs, int(resp.Count), nil
	}
	page, total, rev, err := s.pageKeys(ctx, prefix, offset, limit)
	if err != nil || len(page) == 0 {
		return nil, total, err
	}
	resp, err := s.cli.Get(ctx, page[0], clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)),
		clientv3.WithLimit(int64(len(page))), clientv3.WithRev(rev))
	if err != nil {
		return nil, 0, err
	}
	return resp.Kvs, total, nil
}
