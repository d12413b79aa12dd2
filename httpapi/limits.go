package httpapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
)

// rateLimiter keeps a token bucket per key: per API key (the issuers of
// verified tokens, so the map is bounded by the configured keys), or per
// client address (bounded by maxKeys).
type rateLimiter struct {
	limit rate.Limit
	burst int
	clock clock.Clock
	// maxKeys bounds the buckets kept, for keys that anyone chooses (client
	// addresses); 0 for none.
	maxKeys int

	mu      sync.Mutex // guards the following
	buckets map[string]*rate.Limiter
	// order holds the keys of buckets, oldest first, when maxKeys bounds
	// them: pruneLocked drops from its front.
	order []string
}

// pruneFraction is the share of a full map (1/8) that a prune frees at
// least, so that the next maxKeys/pruneFraction new keys find room without
// one: each prune scans the map once, and its cost per new key stays a
// constant, however many new keys come.
const pruneFraction = 8

func newRateLimiter(perSecond float64, burst int, clk clock.Clock) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, clock: clk, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from key's bucket, or reports how long until one is
// available.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	now := l.clock.Now()
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		if l.maxKeys > 0 {
			if len(l.buckets) >= l.maxKeys {
				l.pruneLocked(now)
			}
			l.order = append(l.order, key)
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if wait := r.DelayFrom(now); wait > 0 {
		// A refused call must not spend the token it would have waited for.
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// pruneLocked makes room for maxKeys/pruneFraction buckets (at least one):
// it drops the full ones, which are the same as new ones, and if that is
// not enough, the oldest, whose keys start afresh: the price of a bounded
// map.
func (l *rateLimiter) pruneLocked(now time.Time) {
	keep := l.maxKeys - max(1, l.maxKeys/pruneFraction)
	kept := l.order[:0]
	for _, k := range l.order {
		if l.buckets[k].TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
			continue
		}
		kept = append(kept, k)
	}
	drop := max(0, len(kept)-keep)
	for _, k := range kept[:drop] {
		delete(l.buckets, k)
	}
	n := copy(l.order, kept[drop:])
	clear(l.order[n:]) // no key outlives its bucket in the array
	l.order = l.order[:n]
}

// tokenCacheSize bounds the verified-token cache. Admin callers are few, so
// a small cache catches nearly every request.
const tokenCacheSize = 1024

// tokenCacheTTL bounds how long a verification is reused, whatever the
// token's exp: a change of the verifier's keys shows within this time.
const tokenCacheTTL = time.Minute

// tokenCache remembers verified tokens for tokenCacheTTL, never past their
// exp, to spare the HMAC and JSON parsing of a JWT (about 10 µs and 47
// allocations) on every request. Only successes are cached, so
// junk tokens cannot crowd out real ones.
type tokenCache struct {
	size  int
	clock clock.Clock

	mu      sync.RWMutex // guards entries
	entries map[string]cachedToken
}

type cachedToken struct {
	claims *auth.Claims
	until  time.Time
}

func newTokenCache(size int, clk clock.Clock) *tokenCache {
	return &tokenCache{size: size, clock: clk, entries: make(map[string]cachedToken, size)}
}

func (tc *tokenCache) get(token string) (*auth.Claims, bool) {
	tc.mu.RLock()
	e, ok := tc.entries[token]
	tc.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !tc.clock.Now().Before(e.until) {
		tc.mu.Lock()
		delete(tc.entries, token)
		tc.mu.Unlock()
		return nil, false
	}
	return e.claims, true
}

func (tc *tokenCache) put(token string, c *auth.Claims) {
	if tc.size <= 0 || c.ExpiresAt == nil {
		return
	}
	now := tc.clock.Now()
	until := now.Add(tokenCacheTTL)
	if exp := c.ExpiresAt.Time; exp.Before(until) {
		until = exp
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= tc.size {
		// Drop the expired entries; if none, drop arbitrary ones (map order)
		// until there is room. Either way the cost is bounded by size.
		for t, e := range tc.entries {
			if !now.Before(e.until) {
				delete(tc.entries, t)
			}
		}
		for t := range tc.entries {
			if len(tc.entries) < tc.size {
				break
			}
			delete(tc.entries, t)
		}
	}
	tc.entries[token] = cachedToken{claims: c, until: until}
}
