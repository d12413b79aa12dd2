package rtc

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"

	"github.com/troupe-media/troupe/internal/poll"
)

// The ICE mux takes the allocation-free path only for conns that offer it.
var _ ice.AddrPortReaderWriter = (*sharedUDPConn)(nil)

func TestSharedUDPConnDeliversConcurrentWrites(t *testing.T) {
	for _, network := range []struct{ name, listen string }{
		{"ipv4", "127.0.0.1:0"},
		{"ipv6", "[::1]:0"},
	} {
		t.Run(network.name, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", network.listen)
			if err != nil {
				t.Skipf("no %s loopback: %v", network.name, err)
			}
			conn := newSharedUDPConn(pc, slog.Default())
			shared, ok := conn.(*sharedUDPConn)
			if !ok {
				t.Fatalf("newSharedUDPConn returned %T", conn)
			}
			defer shared.Close()
			rpc, err := net.ListenPacket("udp", network.listen)
			if err != nil {
				t.Fatal(err)
			}
			rx := newSharedUDPConn(rpc, slog.Default()).(*sharedUDPConn)
			defer rx.Close()
			_ = rx.SetReadBuffer(4 << 20)
			to := rx.LocalAddr().(*net.UDPAddr).AddrPort()

			const writers, each = 4, 200
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					b := make([]byte, 1000)
					for i := 0; i < each; i++ {
						binary.BigEndian.PutUint32(b, uint32(w*each+i))
						if n, err := shared.WriteToAddrPort(b, to); err != nil || n != len(b) {
							t.Errorf("write: %d, %v", n, err)
							return
						}
					}
				}()
			}
			seen := make(map[uint32]bool)
			buf := make([]byte, 1500)
			_ = rx.SetReadDeadline(time.Now().Add(poll.Timeout))
			for len(seen) < writers*each {
				n, from, err := rx.ReadFromAddrPort(buf)
				if err != nil {
					t.Fatalf("after %d datagrams: %v", len(seen), err)
				}
				if n != 1000 {
					t.Fatalf("datagram of %d bytes, want 1000", n)
				}
				if want := shared.LocalAddr().(*net.UDPAddr).AddrPort(); from != want {
					t.Fatalf("datagram from %v, want %v", from, want)
				}
				seen[binary.BigEndian.Uint32(buf)] = true
			}
			wg.Wait()
		})
	}
}

func TestSharedUDPConnReadDeadline(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shared := newSharedUDPConn(pc, slog.Default()).(*sharedUDPConn)
	defer shared.Close()
	_ = shared.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := shared.ReadFromAddrPort(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	// Close unblocks a waiting read.
	_ = shared.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, _, err := shared.ReadFromAddrPort(make([]byte, 100))
		done <- err
	}()
	poll.Until(t, "the read to wait on the socket", func() bool { return blockedIn("sharedUDPConn).ReadFromAddrPort") })
	shared.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read across Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("Close did not unblock the read")
	}
}

func TestSharedUDPConnWriteAfterClose(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shared := newSharedUDPConn(pc, slog.Default()).(*sharedUDPConn)
	shared.Close()
	_, err = shared.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v, want net.ErrClosed", err)
	}
}

// An address the socket cannot reach is an error, not a silent drop.
func TestSharedUDPConnWrongFamily(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	shared := newSharedUDPConn(pc, slog.Default()).(*sharedUDPConn)
	defer shared.Close()
	if _, err := shared.WriteToAddrPort([]byte("x"), netip.MustParseAddrPort("[::1]:9")); err == nil {
		t.Error("IPv6 destination on an IPv4 socket: no error")
	}
}

func BenchmarkSharedUDPConnWrite(b *testing.B) {
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, v := range []struct {
		name string
		wrap func(net.PacketConn) net.PacketConn
	}{
		{"std", func(c net.PacketConn) net.PacketConn { return c }},
		{"shared", func(c net.PacketConn) net.PacketConn { return newSharedUDPConn(c, slog.Default()) }},
	} {
		b.Run(v.name, func(b *testing.B) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			conn := v.wrap(pc)
			defer conn.Close()
			write := func(p []byte) error { _, err := conn.(*net.UDPConn).WriteToUDPAddrPort(p, to); return err }
			if s, ok := conn.(*sharedUDPConn); ok {
				write = func(p []byte) error { _, err := s.WriteToAddrPort(p, to); return err }
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				p := make([]byte, 1000)
				for pb.Next() {
					if err := write(p); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// blockedIn reports whether a goroutine is parked on the network poller
// (IO wait) inside fn.
func blockedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
			return true
		}
	}
	return false
}
