package rtc

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestDataRoom50Load is the data scenario over loopback, a measurement
// rather than a check, so it runs only with TROUPE_DATA_LOAD=<seconds>:
// 50 pion clients in one room, each sending 5 messages a second to the
// room on its reliable channel. It logs the deliveries a second, the p50
// and p99 delivery latency (send to receipt, on this process's clock),
// and the CPU the whole process spent per delivery: the server's relay
// and the 50 clients' pion stacks, both ends of every message, so it
// overstates the server's share.
//
//	TROUPE_DATA_LOAD=10 go test ./rtc -run TestDataRoom50Load -v
func TestDataRoom50Load(t *testing.T) {
	seconds, _ := strconv.Atoi(os.Getenv("TROUPE_DATA_LOAD"))
	if seconds <= 0 {
		t.Skip("a measurement: set TROUPE_DATA_LOAD to its length in seconds")
	}
	const n, perSecond = 50, 5
	relay, engine := newDataTest(t, DataRelayConfig{})
	clients := make([]*dataClient, n)
	want := seconds * perSecond * n * (n - 1)
	var mu sync.Mutex
	var lat []time.Duration
	all := make(chan struct{}) // closed when every delivery has come
	for i := range clients {
		c := newDataClient(t, engine, relay, fmt.Sprintf("PA_%02d", i), false)
		c.reliable.OnMessage(func(m webrtc.DataChannelMessage) {
			var env struct {
				Data string `json:"data"`
			}
			if json.Unmarshal(m.Data, &env) != nil {
				return
			}
			var sent int64
			if _, err := fmt.Sscan(env.Data, &sent); err != nil {
				return
			}
			d := time.Since(time.Unix(0, sent))
			mu.Lock()
			lat = append(lat, d)
			if len(lat) == want {
				close(all)
			}
			mu.Unlock()
		})
		clients[i] = c
	}
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the senders over the interval, as people are.
			<-time.After(time.Duration(i) * time.Second / perSecond / n)
			tick := time.NewTicker(time.Second / perSecond)
			defer tick.Stop()
			for range seconds * perSecond {
				msg := fmt.Sprintf(`{"topic":"cursor","data":"%d"}`, time.Now().UnixNano())
				if err := c.reliable.SendText(msg); err != nil {
					t.Error(err)
					return
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(10 * time.Second): // the rest are lost
	}
	elapsed := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	mu.Lock()
	defer mu.Unlock()
	if len(lat) == 0 {
		t.Fatal("nothing delivered")
	}
	slices.Sort(lat)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	t.Logf("%d clients x %d messages/s for %d s: %d of %d deliveries (%.0f a second), latency p50 %v p99 %v, process CPU %v (%.1f µs per delivery)",
		n, perSecond, seconds, len(lat), want, float64(len(lat))/elapsed.Seconds(),
		lat[len(lat)/2].Round(10*time.Microsecond), lat[len(lat)*99/100].Round(10*time.Microsecond),
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(len(lat)))
}
