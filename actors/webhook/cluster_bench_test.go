package webhook

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// BenchmarkClusterDelivery measures what delivering through the claims
// costs: a batch of events over several rooms, queued in etcd, delivered to
// a receiver on loopback by one Deliverer without claims (as every node
// delivered before claims), or by one or three nodes holding claims.
func BenchmarkClusterDelivery(b *testing.B) {
	const events, rooms = 200, 20
	for _, nodes := range []int{0, 1, 3} {
		name := fmt.Sprintf("nodes=%d", nodes)
		if nodes == 0 {
			name = "unclaimed"
		}
		b.Run(name, func(b *testing.B) {
			endpoint, _ := etcdtest.Start(b)
			recv := newReceiver(b, defaultSecret, func(Payload, int) int { return http.StatusNoContent })
			owners := openEtcd(b, endpoint, "")
			var ds []*Deliverer
			if nodes == 0 {
				d := newDeliverer(b, Config{Store: owners, AllowPrivate: true, PollInterval: time.Hour})
				run(b, d)
				ds = append(ds, d)
			}
			for i := range nodes {
				ds = append(ds, startNode(b, endpoint, fmt.Sprintf("node-%d", i), nil).d)
			}
			hook := &recordpb.Webhook{Endpoint: recv.url("/h"), Events: []string{"*"}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				for j := range events {
					enqueue(b, owners, nil, Event{Name: "room-updated", RoomID: fmt.Sprintf("r%d", j%rooms)}, hook)
				}
				b.StartTimer()
				for _, d := range ds {
					d.Notify()
				}
				poll.Until(b, "the batch delivered", func() bool {
					acc, _ := recv.snapshot()
					pending, _ := owners.WebhookBacklog()
					return len(acc) >= (i+1)*events && pending == 0
				})
			}
			b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
