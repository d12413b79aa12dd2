package persistence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Config configures Open.
type Config struct {
	// Dir is the directory of the Pebble database, created if missing.
	// Required.
	Dir string
	// Logger receives Pebble's messages and the store's own. Nil means
	// slog.Default(). Pebble's routine chatter is logged at debug level.
	Logger *slog.Logger
	// FS is the file system Pebble uses. Nil means vfs.Default (the
	// operating system's); tests wrap it, e.g. to count fsyncs.
	FS vfs.FS
	// IdempotencyTTL is how long an idempotency record answers a retried
	// request. Older records are ignored and pruned in the background.
	// Zero means 24h.
	IdempotencyTTL time.Duration
	// Clock gives idempotency records their age and times their pruning;
	// nil means clock.System.
	Clock clock.Clock
}

const (
	defaultIdempotencyTTL = 24 * time.Hour

	// A small server keeps few rooms: a modest block cache and memtable
	// keep the resident size low while holding every hot room in memory.
	blockCacheSize = 32 << 20
	memTableSize   = 8 << 20

	// formatVersion is pinned rather than left to Pebble's default so that
	// upgrading Pebble never silently ratchets the on-disk format (which an
	// older binary could not open). Raise it deliberately.
	formatVersion = pebble.FormatValueSeparation
)

// Store is the database. Its methods are safe for concurrent use.
type Store struct {
	db      *pebble.DB
	log     *slog.Logger
	idemTTL time.Duration
	clock   clock.Clock // idempotency expiry and pruning

	// gate is entered by every operation for as long as it uses db: Pebble
	// panics when used after Close, so Close shuts the gate (waiting for
	// the operations in flight) before it closes db.
	gate Gate

	closeOnce sync.Once
	closeErr  error
	stopPrune chan struct{}
	pruneDone chan struct{}

	// locks orders the writers of one record (read the old value, commit
	// the new one) and of one room's outbox, without ordering writers of
	// different records. See Apply.
	locks keyLocks

	// idemMu is read-locked by PutIdempotent around its commit and
	// write-locked by pruning while it re-checks and deletes expired
	// records, so a prune never deletes a record written after its check.
	idemMu sync.RWMutex

	counts        roomCounts
	sessionCounts sessionCounts
	webhookCounts webhookCounts
	// outboxSeq is the last webhook outbox sequence number taken; Open
	// sets it to the highest one stored.
	outboxSeq atomic.Uint64
}

// Open opens (or creates) the database in cfg.Dir.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: Config.Dir is required", ErrInvalid)
	}
	if cfg.IdempotencyTTL < 0 {
		return nil, fmt.Errorf("%w: negative Config.IdempotencyTTL %v", ErrInvalid, cfg.IdempotencyTTL)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "persistence")
	fs := cfg.FS
	if fs == nil {
		fs = vfs.Default
	}
	ttl := cfg.IdempotencyTTL
	if ttl == 0 {
		ttl = defaultIdempotencyTTL
	}
	clk := cfg.Clock
	if clk == nil {
		clk = clock.System{}
	}

	cache := pebble.NewCache(blockCacheSize)
	defer cache.Unref() // the DB holds its own reference
	listener := eventListener(log)
	opts := &pebble.Options{
		FS:                 fs,
		Cache:              cache,
		MemTableSize:       memTableSize,
		FormatMajorVersion: formatVersion,
		Logger:             pebbleLogger{log},
		EventListener:      &listener,
	}
	db, err := pebble.Open(cfg.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("persistence: open %s: %w", cfg.Dir, err)
	}
	s := &Store{
		db:        db,
		log:       log,
		idemTTL:   ttl,
		clock:     clk,
		stopPrune: make(chan struct{}),
		pruneDone: make(chan struct{}),
	}
	if err := s.init(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	go s.pruneLoop()
	return s, nil
}

// init checks the layout version (writing it into a new database) and counts
// the rooms.
func (s *Store) init() error {
	v, closer, err := s.db.Get([]byte(keyLayout))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set([]byte(keyLayout), []byte{layoutVersion}, pebble.Sync); err != nil {
			return fmt.Errorf("persistence: write layout version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("persistence: read layout version: %w", err)
	default:
		ok := len(v) == 1 && v[0] == layoutVersion
		got := append([]byte(nil), v...)
		closer.Close()
		if !ok {
			return corrupt(KindMeta, []byte(keyLayout),
				fmt.Errorf("%w: layout %x (this build reads %d)", ErrUnknownSchema, got, layoutVersion))
		}
	}
	if err := s.loadCounts(); err != nil {
		return err
	}
	if err := s.loadSessionCounts(); err != nil {
		return err
	}
	return s.loadWebhookCounts()
}

// Close closes the database. It waits for operations in flight; later
// operations return ErrClosed. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopPrune)
		<-s.pruneDone
		s.gate.Shut(func() {
			if err := s.db.Close(); err != nil {
				s.closeErr = fmt.Errorf("persistence: close: %w", err)
			}
		})
	})
	return s.closeErr
}

// enter starts an operation on the database: it returns ErrClosed after
// Close, or the context's error. On success the caller must call s.leave.
func (s *Store) enter(ctx context.Context) error { return s.gate.Enter(ctx) }

func (s *Store) leave() { s.gate.Leave() }

// pebbleLogger routes Pebble's log into slog. Pebble reports every flush,
// compaction and WAL rotation at info level: that is debug for Troupe.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on a broken invariant, and Pebble does not
// expect it to return. Like Pebble's own logger it ends the process: going on
// could write a damaged database.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("pebble fatal: " + fmt.Sprintf(format, args...))
	os.Exit(1)
}

// eventListener logs the Pebble events an operator should see.
func eventListener(log *slog.Logger) pebble.EventListener {
	return pebble.EventListener{
		BackgroundError: func(err error) {
			log.Error("pebble background error", "err", err)
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			log.Error("pebble data corruption", "path", info.Path, "err", info.Details)
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn("pebble disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			log.Warn("pebble write stall", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			log.Info("pebble write stall ended")
		},
	}
}

// keyLocks is a set of mutexes created on demand, one per key in use.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock // guarded by mu
}

type keyLock struct {
	sync.Mutex
	refs int // guarded by keyLocks.mu
}

// lock locks key and returns its unlock function.
func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = new(keyLock)
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// lockAll locks every key, in sorted order so that two callers locking
// overlapping sets cannot deadlock, and returns the function that unlocks
// them all.
func (k *keyLocks) lockAll(keys []string) (unlock func()) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	unlocks := make([]func(), len(keys))
	for i, key := range keys {
		unlocks[i] = k.lock(key)
	}
	return func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
}

// roomCounts holds the number of rooms per status in memory.
//
// ListRooms needs the total of a filter on every call. Counting index
// entries would cost a scan per call; a counter kept in Pebble would be
// read, modified and written by every PutRoom, so concurrent writers of
// different rooms would have to be serialized around it, which defeats the
// shared fsyncs of group commit. The counts are instead computed once at
// Open from the index keys (keys only, no room values) and adjusted by each
// write after its batch has committed, so a failed commit never skews them.
// They are exact for a single Store: every room write goes through it.
type roomCounts struct {
	mu       sync.Mutex
	byStatus map[recordpb.RoomStatus]int // guarded by mu
	total    int                         // guarded by mu
}

func (c *roomCounts) add(st recordpb.RoomStatus, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byStatus == nil {
		c.byStatus = make(map[recordpb.RoomStatus]int)
	}
	c.byStatus[st] += n
	if c.byStatus[st] == 0 {
		delete(c.byStatus, st)
	}
	c.total += n
}

// move records that a room changed status from one to another.
func (c *roomCounts) move(from, to recordpb.RoomStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byStatus == nil {
		c.byStatus = make(map[recordpb.RoomStatus]int)
	}
	c.byStatus[from]--
	if c.byStatus[from] == 0 {
		delete(c.byStatus, from)
	}
	c.byStatus[to]++
}

// get returns the count of a status, or of all rooms for UNSPECIFIED.
func (c *roomCounts) get(st recordpb.RoomStatus) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == recordpb.RoomStatus_ROOM_STATUS_UNSPECIFIED {
		return c.total
	}
	return c.byStatus[st]
}

func (c *roomCounts) snapshot() map[recordpb.RoomStatus]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[recordpb.RoomStatus]int, len(c.byStatus))
	for st, n := range c.byStatus {
		m[st] = n
	}
	return m
}
