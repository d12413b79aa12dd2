package httpapi

import (
	"sync"
	"time"

	"github.com/troupe-media/troupe/httpapi/auth"
)

// rateLimiter is a token bucket per API key. Keys are the issuers of
// verified tokens, so the map is bounded by the configured keys.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket, or reports how long until one is
// available.
func (l *rateLimiter) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// tokenCacheSize bounds the verified-token cache. Admin callers are few, so
// a small cache catches nearly every request.
const tokenCacheSize = 1024

// tokenCache remembers verified tokens until they expire, to spare the HMAC
// and JSON parsing of a JWT on every request. Only successes are cached, so
// junk tokens cannot crowd out real ones.
type tokenCache struct {
	size int
	now  func() time.Time

	mu      sync.RWMutex // guards entries
	entries map[string]*auth.Claims
}

func newTokenCache(size int, now func() time.Time) *tokenCache {
	return &tokenCache{size: size, now: now, entries: make(map[string]*auth.Claims, size)}
}

func (tc *tokenCache) get(token string) (*auth.Claims, bool) {
	tc.mu.RLock()
	c, ok := tc.entries[token]
	tc.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !tc.now().Before(c.ExpiresAt.Time) {
		tc.mu.Lock()
		delete(tc.entries, token)
		tc.mu.Unlock()
		return nil, false
	}
	return c, true
}

func (tc *tokenCache) put(token string, c *auth.Claims) {
	if tc.size <= 0 || c.ExpiresAt == nil {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= tc.size {
		// Drop the expired entries; if none, drop arbitrary ones (map order)
		// until there is room. Either way the cost is bounded by size.
		now := tc.now()
		for t, e := range tc.entries {
			if !now.Before(e.ExpiresAt.Time) {
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
	tc.entries[token] = c
}
