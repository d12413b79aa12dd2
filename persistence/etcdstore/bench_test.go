package etcdstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// BenchmarkRoomCreate measures the write of a room's creation: one Apply of
// the room and its room-created event, one etcd transaction (the room, its
// two listing entries, the event and the room's Seq counter), synced by a
// single-member etcd on loopback. "fenced" is the same on a cluster node
// that claimed the rooms beforehand: the transaction also compares the
// owner key.
func BenchmarkRoomCreate(b *testing.B) {
	endpoint := startEtcd(b)
	for _, fenced := range []bool{false, true} {
		name := "plain"
		if fenced {
			name = "fenced"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s := open(b, endpoint, fmt.Sprintf("bench-%s-%d/", name, b.N), func(c *etcdstore.Config) {
				if fenced {
					c.NodeID = "bench-node"
				}
			})
			id := func(i int) string { return fmt.Sprintf("room_%08d", i) }
			if fenced {
				if _, err := s.Register(ctx); err != nil {
					b.Fatal(err)
				}
				for i := range b.N {
					if err := s.Claim(ctx, id(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			created := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				w := persistence.Writes{
					Room: &recordpb.Room{Id: id(i), Name: "bench", Status: recordpb.RoomStatus_ROOM_STATUS_ACTIVE, CreatedAt: created},
					Events: []*recordpb.WebhookEvent{{
						Id: "whd_" + id(i), Event: "room-created", RoomId: id(i),
						Endpoint: "https://hooks.example/troupe", CreatedAt: created, Data: []byte(`{"room":"` + id(i) + `"}`),
					}},
				}
				if err := s.Apply(ctx, w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
		})
	}
}
