package rtc

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
)

// BenchmarkDataRelay times the relay path of one message a participant
// sends to a room of 50: limits, parsing, tagging and queueing for the 49
// others. The receivers' writers are replaced by goroutines that drain
// their queues, which hold every message (no drops), so the figure leaves
// out SCTP and the network but counts waking the receivers.
func BenchmarkDataRelay(b *testing.B) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	relay := NewDataRelay(DataRelayConfig{MessagesPerSecond: 1e12, BytesPerSecond: 1 << 50, Queue: b.N + 1, Clock: clk, Metrics: NewDataMetrics()})
	var eps []*DataEndpoint
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 50 {
		e := relay.Join(DataSender{ID: fmt.Sprintf("PA_%02d", i), Identity: fmt.Sprintf("user-%02d", i)}, nil)
		close(e.stop)
		<-e.done
		e.reliable.Store(&webrtc.DataChannel{}) // counts as open; never written to
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-e.queue:
				case <-stop:
					return
				}
			}
		}()
		eps = append(eps, e)
	}
	frame := []byte(`{"topic":"cursor","data":"{\"x\":120,\"y\":348,\"page\":3}"}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		eps[0].receive(frame, true, false)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	if d := relay.cfg.Metrics.Dropped("queue_full"); d > 0 {
		b.Fatalf("%d queue_full drops with queues that hold every message", d)
	}
	for _, e := range eps {
		relay.leave(e)
	}
}
