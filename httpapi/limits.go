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

// tokenCacheTTL bounds how long a verification is reused, whatever the
// token's exp: a change of the verifier's keys shows within this time.
const tokenCacheTTL = time.Minute

// tokenCache remembers verified tokens for tokenCacheTTL, never past their
// exp, to spare the HMAC and JSON parsing of a JWT (about 10 µs and 47
// allocations) on every request. Only successes are cached, so
// junk tokens cannot crowd out real ones.
type tokenCache struct {
	size int
	now  func() time.Time

	mu      sync.RWMutex // guards entries
	entries map[string]cachedToken
}

type cachedToken struct {
	claims *auth.Claims
	until  time.Time
}

func newTokenCache(size int, now func() time.Time) *tokenCache {
	return &tokenCache{size: size, now: now, entries: make(map[string]cachedToken, size)}
}

func (tc *tokenCache) get(token string) (*auth.Claims, bool) {
	tc.mu.RLock()
	e, ok := tc.entries[token]
	tc.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if !tc.now().Before(e.until) {
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
	now := tc.now()
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
