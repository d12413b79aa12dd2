package packetcache

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
)

func packet(seq uint16, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint16(b, seq)
	for i := 2; i < n; i++ {
		b[i] = byte(int(seq) + i)
	}
	return b
}

func TestNewRejectsBadSizes(t *testing.T) {
	for _, cfg := range []Config{{Slots: 3}, {Slots: -4}, {Slots: 1 << 16}, {MaxPacketSize: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Slots() != DefaultSlots {
		t.Errorf("Slots() = %d, want %d", c.Slots(), DefaultSlots)
	}
}

func TestStoreGet(t *testing.T) {
	tests := []struct {
		name   string
		first  uint16 // first sequence number stored
		count  int    // packets stored, consecutive
		get    uint16
		wantOK bool
	}{
		{"latest", 100, 10, 109, true},
		{"oldest kept", 100, 20, 100 + 20 - 16, true},
		{"overwritten", 100, 20, 100 + 20 - 17, false},
		{"never stored", 100, 10, 500, false},
		{"wraparound after", 65530, 12, 3, true},
		{"wraparound before", 65530, 12, 65535, true},
		{"wraparound evicted", 65530, 20, 65531, false},
		{"future seq same slot", 100, 10, 100 + 16, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Slots: 16, MaxPacketSize: 200})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tt.count; i++ {
				seq := tt.first + uint16(i)
				c.Store(seq, packet(seq, 20+i))
			}
			dst := make([]byte, 200)
			n, ok := c.Get(tt.get, dst)
			if ok != tt.wantOK {
				t.Fatalf("Get(%d) ok = %v, want %v", tt.get, ok, tt.wantOK)
			}
			if !ok {
				return
			}
			want := packet(tt.get, 20+int(tt.get-tt.first))
			if !bytes.Equal(dst[:n], want) {
				t.Errorf("Get(%d) = %x, want %x", tt.get, dst[:n], want)
			}
		})
	}
}

func TestOversizeAndShortDst(t *testing.T) {
	c, err := New(Config{Slots: 4, MaxPacketSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	c.Store(1, packet(1, 50))
	c.Store(1, packet(1, 101)) // too large: must not leave the old packet behind
	if _, ok := c.Get(1, make([]byte, 200)); ok {
		t.Error("Get after oversize Store returned a packet")
	}
	c.Store(2, packet(2, 60))
	if _, ok := c.Get(2, make([]byte, 59)); ok {
		t.Error("Get into a short buffer succeeded")
	}
	if n, ok := c.Get(2, make([]byte, 60)); !ok || n != 60 {
		t.Errorf("Get = %d, %v; want 60, true", n, ok)
	}
}

// TestConcurrentReaders runs one writer against several readers; under -race
// it proves the slot protocol, and every packet read must be whole.
func TestConcurrentReaders(t *testing.T) {
	c, err := New(Config{Slots: 64, MaxPacketSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	const total = 20000
	var wg sync.WaitGroup
	done := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, 300)
			for seq := uint16(0); ; seq += 7 {
				select {
				case <-done:
					return
				default:
				}
				n, ok := c.Get(seq, dst)
				if !ok {
					continue
				}
				if want := packet(seq, 20+int(seq)%200); !bytes.Equal(dst[:n], want) {
					t.Errorf("torn packet for seq %d", seq)
					return
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		seq := uint16(i)
		c.Store(seq, packet(seq, 20+int(seq)%200))
	}
	close(done)
	wg.Wait()
}

func TestStoreDoesNotAllocate(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	pkt := packet(0, 1200)
	dst := make([]byte, 1500)
	var seq uint16
	allocs := testing.AllocsPerRun(1000, func() {
		c.Store(seq, pkt)
		c.Get(seq, dst)
		seq++
	})
	if allocs != 0 {
		t.Errorf("Store+Get allocate %.1f times per call", allocs)
	}
}

func BenchmarkStore(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	pkt := packet(0, 1200)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var seq uint16
	for b.Loop() {
		c.Store(seq, pkt)
		seq++
	}
}

func BenchmarkGet(b *testing.B) {
	c, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < c.Slots(); i++ {
		c.Store(uint16(i), packet(uint16(i), 1200))
	}
	dst := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1200)
	var seq uint16
	for b.Loop() {
		if _, ok := c.Get(seq&0xff, dst); !ok {
			b.Fatal("miss")
		}
		seq++
	}
}
