package persistence

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/troupe-media/troupe/persistence/internal/recordtest"
)

func BenchmarkPutRoom(b *testing.B) {
	s, fs := openCountingStore(b, 0)
	ctx := context.Background()
	before := fs.syncs.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.PutRoom(ctx, recordtest.Room(fmt.Sprintf("r%09d", i), active, i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fs.syncs.Load()-before)/float64(b.N), "fsyncs/op")
}

func BenchmarkPutRoomParallel(b *testing.B) {
	s, fs := openCountingStore(b, 0)
	ctx := context.Background()
	var next atomic.Int64
	b.SetParallelism(32) // writers waiting on I/O, not CPU: many per core
	before := fs.syncs.Load()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			if err := s.PutRoom(ctx, recordtest.Room(fmt.Sprintf("r%09d", i), active, i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(fs.syncs.Load()-before)/float64(b.N), "fsyncs/op")
}

// benchRooms is how many rooms the read benchmarks find in the store.
const benchRooms = 1000

// storeWithRooms opens a store holding benchRooms active rooms, r0000 to
// r0999, created a second apart.
func storeWithRooms(b *testing.B) *Store {
	s := openStore(b, "")
	for i := range benchRooms {
		mustPut(b, s, recordtest.Room(fmt.Sprintf("r%04d", i), active, i))
	}
	return s
}

func BenchmarkGetRoom(b *testing.B) {
	s := storeWithRooms(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.GetRoom(ctx, fmt.Sprintf("r%04d", rand.IntN(benchRooms))); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListRooms(b *testing.B) {
	s := storeWithRooms(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, err := s.ListRooms(ctx, RoomQuery{Limit: 20, Offset: 500})
		if err != nil || len(page.Rooms) != 20 {
			b.Fatal(len(page.Rooms), err)
		}
	}
}
