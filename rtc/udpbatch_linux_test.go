package rtc

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
)

// The fan-out writers find batching through this interface.
var _ sendBatcher = (*sharedUDPConn)(nil)

// batchPeers returns a shared conn and n plain receivers on the loopback
// address of network ("udp4" or "udp6").
func batchPeers(t *testing.T, network string, n int) (*sharedUDPConn, []*net.UDPConn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "udp6" {
		addr = "[::1]:0"
	}
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	shared, ok := newSharedUDPConn(pc, slog.New(slog.DiscardHandler)).(*sharedUDPConn)
	if !ok {
		t.Fatal("newSharedUDPConn did not wrap a UDP socket")
	}
	t.Cleanup(func() { shared.Close() })
	rxs := make([]*net.UDPConn, n)
	for i := range rxs {
		rpc, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		rxs[i] = rpc.(*net.UDPConn)
		_ = rxs[i].SetReadBuffer(4 << 20)
		t.Cleanup(func() { rpc.Close() })
	}
	return shared, rxs
}

func addrOf(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// datagram is a test payload of size bytes that starts with id.
func datagram(id uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, id)
	for i := 4; i < size; i++ {
		b[i] = byte(id) + byte(i)
	}
	return b
}

// readWithin reads one datagram, or reports a timeout as ok == false.
func readWithin(t *testing.T, rx *net.UDPConn, d time.Duration) (b []byte, from netip.AddrPort, ok bool) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = rx.SetReadDeadline(time.Now().Add(d))
	n, from, err := rx.ReadFromUDPAddrPort(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, netip.AddrPort{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], from, true
}

// receiveEach reads want(i) datagrams on each receiver i, in a goroutine
// of its own, and hands each to check, which returns false to stop that
// receiver. The returned wait waits for every receiver to end.
func receiveEach(t *testing.T, rxs []*net.UDPConn, want func(i int) int, check func(i int, d []byte) bool) (wait func()) {
	t.Helper()
	var wg sync.WaitGroup
	for i, rx := range rxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for got := 0; got < want(i); got++ {
				_ = rx.SetReadDeadline(time.Now().Add(poll.Timeout))
				n, err := rx.Read(buf)
				if err != nil {
					t.Errorf("receiver %d after %d datagrams: %v", i, got, err)
					return
				}
				if !check(i, buf[:n]) {
					return
				}
			}
		}()
	}
	return wg.Wait
}

func TestSendBatchWaitsForRelease(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			shared, rxs := batchPeers(t, network, 3)
			shared.holdSends()
			for round := uint32(0); round < 2; round++ {
				for i, rx := range rxs {
					d := datagram(round*10+uint32(i), 1200)
					if n, err := shared.WriteToAddrPort(d, addrOf(rx)); n != len(d) || err != nil {
						t.Fatalf("held write = %d, %v", n, err)
					}
				}
			}
			for i, rx := range rxs {
				if _, _, ok := readWithin(t, rx, 30*time.Millisecond); ok {
					t.Fatalf("receiver %d got a datagram during the hold", i)
				}
			}
			shared.releaseSends()
			for i, rx := range rxs {
				for round := uint32(0); round < 2; round++ {
					got, from, ok := readWithin(t, rx, poll.Timeout)
					if !ok {
						t.Fatalf("receiver %d: datagram %d not sent at the release", i, round)
					}
					if want := datagram(round*10+uint32(i), 1200); string(got) != string(want) {
						t.Fatalf("receiver %d: datagram %d differs (id %d, %d bytes)", i, round, binary.BigEndian.Uint32(got), len(got))
					}
					if from.Port() != addrOf(shared).Port() {
						t.Fatalf("receiver %d: datagram from %v, want port %d", i, from, addrOf(shared).Port())
					}
				}
			}
			// Without a hold, a write goes at once.
			if _, err := shared.WriteToAddrPort(datagram(99, 100), addrOf(rxs[0])); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := readWithin(t, rxs[0], poll.Timeout); !ok {
				t.Fatal("a write without a hold was not sent")
			}
		})
	}
}

// A batch that fills up is sent without waiting for the release; a
// datagram too large for a batch slot is sent at once.
func TestSendBatchFullAndLarge(t *testing.T) {
	shared, rxs := batchPeers(t, "udp4", 1)
	rx := rxs[0]
	shared.holdSends()
	for i := 0; i <= maxBatch; i++ {
		if _, err := shared.WriteToAddrPort(datagram(uint32(i), 200), addrOf(rx)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < maxBatch; i++ {
		got, _, ok := readWithin(t, rx, poll.Timeout)
		if !ok {
			t.Fatalf("datagram %d of a full batch not sent during the hold", i)
		}
		if id := binary.BigEndian.Uint32(got); id != uint32(i) {
			t.Fatalf("datagram %d has id %d", i, id)
		}
	}
	if _, _, ok := readWithin(t, rx, 30*time.Millisecond); ok {
		t.Fatal("the datagram after a full batch was sent during the hold")
	}
	large := datagram(1000, batchSlotSize+1)
	if _, err := shared.WriteToAddrPort(large, addrOf(rx)); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := readWithin(t, rx, poll.Timeout); !ok || len(got) != len(large) {
		t.Fatalf("large datagram during the hold: ok %v, %d bytes", ok, len(got))
	}
	shared.releaseSends()
	if got, _, ok := readWithin(t, rx, poll.Timeout); !ok || binary.BigEndian.Uint32(got) != maxBatch {
		t.Fatal("the last datagram was not sent at the release")
	}
}

// Writers that hold and release on their own, and one that never holds,
// share the conn: every datagram arrives once, under the race detector.
func TestSendBatchConcurrentHolders(t *testing.T) {
	shared, rxs := batchPeers(t, "udp4", 2)
	const holders, rounds, perRound, plain = 4, 100, 5, 300
	var wg sync.WaitGroup
	for h := 0; h < holders; h++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				shared.holdSends()
				for k := 0; k < perRound; k++ {
					id := uint32((h*rounds+r)*perRound + k)
					if _, err := shared.WriteToAddrPort(datagram(id, 200), addrOf(rxs[k%2])); err != nil {
						t.Error(err)
					}
				}
				shared.releaseSends()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; k < plain; k++ {
			if _, err := shared.WriteToAddrPort(datagram(uint32(1e6+k), 200), addrOf(rxs[k%2])); err != nil {
				t.Error(err)
			}
		}
	}()
	// Datagram k of a round goes to receiver k%2, as does plain datagram k.
	want := []int{holders*rounds*3 + plain/2, holders*rounds*2 + plain/2}
	seen := make(map[uint32]bool)
	var mu sync.Mutex
	received := receiveEach(t, rxs, func(i int) int { return want[i] }, func(_ int, d []byte) bool {
		if len(d) != 200 {
			t.Errorf("datagram of %d bytes", len(d))
		}
		mu.Lock()
		defer mu.Unlock()
		id := binary.BigEndian.Uint32(d)
		if seen[id] {
			t.Errorf("datagram %d twice", id)
		}
		seen[id] = true
		return true
	})
	wg.Wait()
	received()
	if len(seen) != want[0]+want[1] {
		t.Fatalf("%d of %d datagrams arrived", len(seen), want[0]+want[1])
	}
	if shared.pending != nil {
		t.Fatal("a batch is left pending with no hold open")
	}
}

// Each holder's datagrams reach each of its receivers in the order it
// wrote them, although another holder may take them into its batch and
// still be sending it when their writer has moved on to the next round.
func TestSendBatchKeepsEachHoldersOrder(t *testing.T) {
	const holders, perHolder, rounds = 3, 4, 400
	shared, rxs := batchPeers(t, "udp4", holders*perHolder)
	var wg sync.WaitGroup
	for h := 0; h < holders; h++ {
		mine := rxs[h*perHolder : (h+1)*perHolder]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				shared.holdSends()
				for _, rx := range mine {
					if _, err := shared.WriteToAddrPort(datagram(uint32(r), 100), addrOf(rx)); err != nil {
						t.Error(err)
					}
				}
				shared.releaseSends()
			}
		}()
	}
	next := make([]uint32, len(rxs)) // each receiver's next round
	received := receiveEach(t, rxs, func(int) int { return rounds }, func(i int, d []byte) bool {
		if got := binary.BigEndian.Uint32(d); got != next[i] {
			t.Errorf("receiver %d: round %d arrived when %d was next", i, got, next[i])
			return false
		}
		next[i]++
		return true
	})
	wg.Wait()
	received()
}

// A datagram the kernel refuses is skipped and counted; the rest of the
// batch is sent.
func TestSendBatchRefusedDatagram(t *testing.T) {
	shared, rxs := batchPeers(t, "udp4", 1)
	rx := rxs[0]
	// Linux refuses UDP to port 0 (EINVAL).
	refused := netip.MustParseAddrPort("127.0.0.1:0")
	if _, err := shared.WriteToAddrPort(datagram(0, 100), refused); err == nil {
		t.Fatal("a datagram to port 0 was sent")
	}
	shared.holdSends()
	for i, to := range []netip.AddrPort{addrOf(rx), refused, addrOf(rx)} {
		if _, err := shared.WriteToAddrPort(datagram(uint32(i), 100), to); err != nil {
			t.Fatalf("held write %d: %v", i, err)
		}
	}
	shared.releaseSends()
	for _, want := range []uint32{0, 2} {
		got, _, ok := readWithin(t, rx, poll.Timeout)
		if !ok || binary.BigEndian.Uint32(got) != want {
			t.Fatalf("want datagram %d after the refused one", want)
		}
	}
	if n := shared.sendErrors.Load(); n != 1 {
		t.Fatalf("%d send errors counted, want 1", n)
	}
}

// A release after the socket closed drops what was queued and returns.
func TestSendBatchReleaseAfterClose(t *testing.T) {
	shared, rxs := batchPeers(t, "udp4", 1)
	shared.holdSends()
	if _, err := shared.WriteToAddrPort(datagram(1, 100), addrOf(rxs[0])); err != nil {
		t.Fatal(err)
	}
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	shared.releaseSends()
	if shared.pending != nil {
		t.Fatal("batch still pending")
	}
	if _, err := shared.WriteToAddrPort(datagram(2, 100), addrOf(rxs[0])); err == nil {
		t.Fatal("write after close succeeded")
	}
}

// BenchmarkSendBatch compares one packet's copies to 25 subscribers sent
// one by one and with one sendmmsg. cpu-us/datagram is the process's CPU,
// receivers' reads included.
func BenchmarkSendBatch(b *testing.B) {
	const subs = 25
	for _, batched := range []bool{false, true} {
		name := "single"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			shared := newSharedUDPConn(pc, slog.Default()).(*sharedUDPConn)
			defer shared.Close()
			var to []netip.AddrPort
			var wg sync.WaitGroup
			defer wg.Wait()
			for i := 0; i < subs; i++ {
				rpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer rpc.Close() // ends its reader
				to = append(to, addrOf(rpc))
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 2048)
					for {
						if _, _, err := rpc.(*net.UDPConn).ReadFromUDPAddrPort(buf); err != nil {
							return
						}
					}
				}()
			}
			p := make([]byte, 1100)
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if batched {
					shared.holdSends()
				}
				for _, a := range to {
					if _, err := shared.WriteToAddrPort(p, a); err != nil {
						b.Fatal(err)
					}
				}
				if batched {
					shared.releaseSends()
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N*subs), "cpu-us/datagram")
		})
	}
}
