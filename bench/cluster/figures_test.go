package cluster

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/troupe-media/troupe/bench/proc"
	"github.com/troupe-media/troupe/internal/poll"
)

// The cluster's figures for bench/RESULTS.md. Each benchmark starts its own
// cluster; run them with a fixed iteration count, for example
//
//	go test ./bench/cluster -run '^$' -bench . -benchtime 2000x -count 5
//
// and take the median of the counts. The sub-benchmarks direct and
// forwarded run one after the other on the same cluster and room.

// BenchmarkREST is GET /api/v1/rooms/{id}, one request at a time, sent to
// the room's owner (direct) and to another node (forwarded).
func BenchmarkREST(b *testing.B) {
	c := startCluster(b, Config{})
	entry := c.Live()[0]
	c.Expect(entry, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": "bench", "name": "bench"})
	owner, err := c.Owner(b.Context(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, via := range []struct {
		name string
		node *Node
	}{{"direct", owner}, {"forwarded", nonOwners(c, owner)[0]}} {
		b.Run(via.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				resp, err := c.Do(b.Context(), via.node, http.MethodGet, "/api/v1/rooms/bench", nil)
				if err != nil || resp.Status != http.StatusOK {
					b.Fatalf("GET through %s: %v %d %s", via.node.ID, err, resp.Status, resp.Body)
				}
				lat = append(lat, time.Since(start))
			}
			b.ReportMetric(float64(percentile(lat, 50))/float64(time.Microsecond), "p50-µs")
			b.ReportMetric(float64(percentile(lat, 99))/float64(time.Microsecond), "p99-µs")
		})
	}
}

// BenchmarkJoinToFirstPacket is a subscriber's join, from the WebSocket
// dial to its first media packet, in a room with one publisher: through
// the owner (direct) and through another node (forwarded). Each iteration
// joins one subscriber and closes it.
func BenchmarkJoinToFirstPacket(b *testing.B) {
	c := startCluster(b, Config{})
	ctx := b.Context()
	entry := c.Live()[0]
	owner := createRoom(b, c, entry, "bench")
	pub, err := c.Join(ctx, owner, "bench", "pub", "publisher")
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	for _, via := range []struct {
		name string
		node *Node
	}{{"direct", owner}, {"forwarded", nonOwners(c, owner)[0]}} {
		b.Run(via.name, func(b *testing.B) {
			var joins []time.Duration
			for b.Loop() {
				sub, err := c.Join(ctx, via.node, "bench", fmt.Sprintf("sub%d", n.Add(1)), "subscriber")
				if err != nil {
					b.Fatal(err)
				}
				var first time.Time
				poll.Until(b, "the subscriber's first packet", func() bool {
					var ok bool
					first, ok = sub.FirstPacket()
					return ok
				})
				joins = append(joins, first.Sub(sub.JoinedAt))
				if err := sub.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(percentile(joins, 50))/float64(time.Millisecond), "join-p50-ms")
		})
	}
}

// BenchmarkRoomCreate is POST /api/v1/rooms from 32 concurrent clients
// spread over the cluster's nodes, each request a new room: the rooms
// created per second in cluster mode, and the CPU each create costs etcd,
// the nodes together, and the clients (this process).
func BenchmarkRoomCreate(b *testing.B) {
	c := startCluster(b, Config{})
	nodes := c.Live()
	pids := map[string][]int{"etcd": {c.Etcd().PID()}}
	for _, n := range nodes {
		pids["nodes"] = append(pids["nodes"], n.PID())
	}
	cpu0 := cpuOf(b, pids)
	self0 := proc.SelfCPU()
	var seq atomic.Int64
	// 32 clients on 2 cores; more cores, more clients.
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			n := nodes[int(i)%len(nodes)]
			resp, err := c.Do(b.Context(), n, http.MethodPost, "/api/v1/rooms", map[string]any{"name": fmt.Sprintf("room %d", i)})
			if err != nil {
				b.Error(err)
				return
			}
			if resp.Status != http.StatusCreated {
				b.Errorf("create through %s: %d %s", n.ID, resp.Status, resp.Body)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	for who, cpu := range cpuOf(b, pids) {
		b.ReportMetric(float64(cpu-cpu0[who])/float64(time.Microsecond)/float64(b.N), who+"-cpu-µs/create")
	}
	b.ReportMetric(float64(proc.SelfCPU()-self0)/float64(time.Microsecond)/float64(b.N), "clients-cpu-µs/create")
}

// cpuOf sums the CPU time of each group of processes.
func cpuOf(b *testing.B, pids map[string][]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for who, list := range pids {
		for _, pid := range list {
			cpu, err := proc.ProcessCPU(pid)
			if err != nil {
				b.Fatal(err)
			}
			out[who] += cpu
		}
	}
	return out
}
