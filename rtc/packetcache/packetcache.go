package packetcache

import (
	"errors"
	"sync"
)

// Sizes used when a Config field is zero.
const (
	DefaultSlots         = 256
	DefaultMaxPacketSize = 1500
)

// ErrBadSize is returned by New for a slot count that is not a power of two
// or a negative packet size.
var ErrBadSize = errors.New("packetcache: slots must be a power of two and sizes positive")

// Config sizes a Cache. The zero value is valid.
type Config struct {
	// Slots is the number of packets kept; a power of two.
	// Zero means DefaultSlots.
	Slots int
	// MaxPacketSize is the largest packet stored; larger packets are not
	// kept. Zero means DefaultMaxPacketSize.
	MaxPacketSize int
}

// slot holds one packet. Its mutex is taken by the single writer for the
// length of one copy and by a reader asking for this very slot, so the two
// only meet when a NACK asks for the packet being overwritten at that moment:
// the lock is almost never contended.
type slot struct {
	mu    sync.Mutex
	valid bool
	seq   uint16
	n     int
	buf   []byte
}

// Cache is a ring of recent packets keyed by RTP sequence number.
type Cache struct {
	mask  uint16
	max   int
	slots []slot
}

// New returns a Cache with every slot's buffer allocated up front.
func New(cfg Config) (*Cache, error) {
	if cfg.Slots == 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Slots < 0 || cfg.Slots > 1<<15 || cfg.Slots&(cfg.Slots-1) != 0 || cfg.MaxPacketSize < 0 {
		return nil, ErrBadSize
	}
	c := &Cache{
		mask:  uint16(cfg.Slots - 1),
		max:   cfg.MaxPacketSize,
		slots: make([]slot, cfg.Slots),
	}
	// One backing array keeps the slots close together and costs one
	// allocation per track instead of one per slot.
	backing := make([]byte, cfg.Slots*cfg.MaxPacketSize)
	for i := range c.slots {
		c.slots[i].buf = backing[i*cfg.MaxPacketSize : (i+1)*cfg.MaxPacketSize : (i+1)*cfg.MaxPacketSize]
	}
	return c, nil
}

// Store copies pkt into the slot for seq, replacing what was there. A packet
// larger than MaxPacketSize empties the slot instead, so that a later Get for
// seq misses rather than returning an older packet. Store must be called from
// one goroutine at a time.
func (c *Cache) Store(seq uint16, pkt []byte) {
	s := &c.slots[seq&c.mask]
	s.mu.Lock()
	if len(pkt) > c.max {
		s.valid = false
	} else {
		s.valid = true
		s.seq = seq
		s.n = copy(s.buf, pkt)
	}
	s.mu.Unlock()
}

// Get copies the packet stored for seq into dst and returns its length. It
// reports false when the packet is no longer (or never was) in the cache, or
// when dst is too short to hold it.
func (c *Cache) Get(seq uint16, dst []byte) (int, bool) {
	s := &c.slots[seq&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.valid || s.seq != seq || len(dst) < s.n {
		return 0, false
	}
	return copy(dst, s.buf[:s.n]), true
}

// Contains reports whether the packet numbered seq is in the cache.
func (c *Cache) Contains(seq uint16) bool {
	s := &c.slots[seq&c.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.valid && s.seq == seq
}

// Slots returns the number of packets the cache holds.
func (c *Cache) Slots() int { return len(c.slots) }
