package httpapi

import (
	"strconv"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/clock"
)

// However many new keys come, the limiter keeps at most maxKeys buckets,
// its order of keys the same as its map's; once full, one new key frees a
// fraction of the map, not one bucket, so that the next ones need no prune.
func TestRateLimiterBound(t *testing.T) {
	clk := clock.NewManual(time.Now())
	l := newRateLimiter(1, 1, clk)
	l.maxKeys = 64
	for i := range 1000 {
		if ok, _ := l.allow("k" + strconv.Itoa(i)); !ok {
			t.Fatalf("new key %d refused", i)
		}
		if len(l.buckets) > l.maxKeys || len(l.order) != len(l.buckets) {
			t.Fatalf("after %d keys: %d buckets, %d keys in order", i+1, len(l.buckets), len(l.order))
		}
		for _, k := range l.order {
			if l.buckets[k] == nil {
				t.Fatalf("after %d keys: %q in order has no bucket", i+1, k)
			}
		}
	}
	// The 65th key found the map full and freed 8 buckets for itself and
	// the 7 after it; so did the 73rd, and every 8th since.
	if got, want := len(l.buckets), 64-8+1+(1000-65)%8; got != want {
		t.Fatalf("%d buckets, want %d", got, want)
	}
	// The newest key's bucket is kept, the oldest keys' dropped.
	if l.buckets["k999"] == nil || l.buckets["k0"] != nil {
		t.Fatal("the oldest buckets were not the ones dropped")
	}
}

// A full bucket (one that refilled: a new one is the same) is dropped
// before any spent one, even the oldest.
func TestRateLimiterDropsFullBucketsFirst(t *testing.T) {
	clk := clock.NewManual(time.Now())
	l := newRateLimiter(1, 2, clk)
	l.maxKeys = 8
	spent := make([]string, 7)
	for i := range spent {
		spent[i] = "spent" + strconv.Itoa(i)
		for range 2 { // the whole burst
			if ok, _ := l.allow(spent[i]); !ok {
				t.Fatalf("%s refused", spent[i])
			}
		}
	}
	if ok, _ := l.allow("newest"); !ok { // one of its two tokens
		t.Fatal("newest refused")
	}
	clk.Advance(time.Second) // newest is full again, the others hold 1 of 2
	if ok, _ := l.allow("one-more"); !ok {
		t.Fatal("one-more refused")
	}
	if len(l.buckets) != 8 || l.buckets["newest"] != nil {
		t.Fatalf("buckets %v: the full one should have gone", l.order)
	}
	for _, k := range spent {
		if l.buckets[k] == nil {
			t.Fatalf("%s's spent bucket was dropped before the full one", k)
		}
	}
	// Without a full one, the oldest goes.
	clk.Advance(time.Millisecond)
	l.allow("last")
	if l.buckets[spent[0]] != nil || l.buckets[spent[1]] == nil || l.buckets["last"] == nil {
		t.Fatalf("buckets %v: only the oldest should have gone", l.order)
	}
}

// A flood of new client addresses, none of whose buckets refills: the
// worst case of a bounded limiter, each new key finding the map full.
func BenchmarkRateLimiterNewKeys(b *testing.B) {
	l := newRateLimiter(defaultPublicJoinRate, defaultPublicJoinBurst, clock.NewManual(time.Now()))
	l.maxKeys = publicJoinKeys
	// Four times the bound, so that a key comes back long after its bucket
	// was dropped: every call makes a bucket.
	keys := make([]string, 4*publicJoinKeys)
	for i := range keys {
		keys[i] = "198.51." + strconv.Itoa(i>>8) + "." + strconv.Itoa(i&0xff)
	}
	for _, k := range keys[:publicJoinKeys] {
		l.allow(k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.allow(keys[(publicJoinKeys+i)%len(keys)])
	}
}
