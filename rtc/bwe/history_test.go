package bwe

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The ring gives each packet its own slot and its extension's bytes, and
// finds it by its full sequence number until a later packet takes the
// slot; a slot whose packet has not gone out is not taken, nor found.
func TestHistory(t *testing.T) {
	e := New(Config{Initial: 1_000_000})
	base := e.hist.base
	r, ok := e.Sending(0x12345)
	if !ok {
		t.Fatal("no slot for the first packet")
	}
	if ext := r.Ext(); ext[0] != 0x23 || ext[1] != 0x45 {
		t.Fatalf("extension % x, want 23 45", ext)
	}
	if _, _, _, ok := e.hist.lookup(0x12345, 0); ok {
		t.Fatal("a packet found before it went out")
	}
	if _, ok := e.Sending(0x12345 + historySize); ok {
		t.Fatal("a slot taken while its packet is being sent")
	}
	r.Sent(1200, base.Add(7*time.Millisecond))
	at, size, _, ok := e.hist.lookup(0x12345, 0)
	if !ok || at != 7000 || size != 1200 {
		t.Fatalf("lookup: %d µs, %d bytes, %v; want 7000, 1200, true", at, size, ok)
	}
	if _, _, _, ok := e.hist.lookup(0x12345-historySize, 0); ok {
		t.Fatal("found a packet the slot never held")
	}
	r2, ok := e.Sending(0x12345 + historySize)
	if !ok {
		t.Fatal("no slot a ring later")
	}
	r2.Sent(100, base)
	if _, _, _, ok := e.hist.lookup(0x12345, 0); ok {
		t.Fatal("found a packet overwritten")
	}
}

// Packets sent from several goroutines at once each get their slot and
// are found (run under -race). A sender stalled between taking its
// number and its slot while a whole ring of later packets went out may
// find its slot still held (its packet goes unrecorded): only the
// packets recorded are looked for.
func TestHistoryConcurrent(t *testing.T) {
	const packets = 20000
	e := New(Config{Initial: 1_000_000})
	var next sync.Mutex
	seq := uint32(0)
	var recorded [packets]atomic.Bool
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range packets / 4 {
				next.Lock()
				s := seq
				seq++
				next.Unlock()
				if r, ok := e.Sending(s); ok {
					r.Sent(int(s%1500), e.hist.base.Add(time.Duration(s)*time.Microsecond))
					recorded[s].Store(true)
				}
			}
		})
	}
	wg.Go(func() {
		for s := range uint32(packets) {
			if at, size, _, ok := e.hist.lookup(s, 0); ok && (at != int64(s) || size != int(s%1500)) {
				t.Errorf("packet %d: %d µs, %d bytes", s, at, size)
				return
			}
		}
	})
	wg.Wait()
	found := 0
	for s := uint32(packets - historySize); s < packets; s++ {
		if !recorded[s].Load() {
			continue
		}
		if _, _, _, ok := e.hist.lookup(s, 0); !ok {
			t.Fatalf("packet %d of the last ring, recorded, not found", s)
		}
		found++
	}
	if found == 0 {
		t.Fatal("no packet of the last ring recorded")
	}
}

// A slot keeps its packet's time in 32 bits of µs: found again near the
// feedback's time however long the connection has run (here past the
// 71 minutes where the bits wrap), and a size above what a slot holds is
// kept as the most it holds.
func TestHistoryWrap(t *testing.T) {
	e := New(Config{Initial: 1_000_000})
	sent := 72*time.Minute + 5*time.Millisecond
	r, ok := e.Sending(7)
	if !ok {
		t.Fatal("no slot")
	}
	r.Sent(20_000, e.hist.base.Add(sent))
	ref := (sent + 80*time.Millisecond).Microseconds()
	at, size, _, ok := e.hist.lookup(7, ref)
	if !ok || at != sent.Microseconds() || size != slotSizeMax {
		t.Fatalf("lookup: %d µs, %d bytes, %v; want %d, %d, true", at, size, ok, sent.Microseconds(), slotSizeMax)
	}
	// The feedback's time may also be a little before the packet's own.
	if at, _, _, _ := e.hist.lookup(7, (sent - time.Second).Microseconds()); at != sent.Microseconds() {
		t.Fatalf("lookup from a second before: %d µs, want %d", at, sent.Microseconds())
	}
}
