package actors

import (
	"context"
	"fmt"
	"testing"

	"github.com/troupe-media/troupe/actors/actorpb"
)

// BenchmarkGet measures one request/reply through the registry to a live room
// actor: the control-plane cost under every REST read.
func BenchmarkGet(b *testing.B) {
	env := newTestEnv(b, nil)
	ctx := context.Background()
	const rooms = 64
	for i := range rooms {
		if _, err := env.rooms.Create(ctx, RoomID(fmt.Sprint("r", i)), spec("R")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := env.rooms.Get(ctx, RoomID(fmt.Sprint("r", i%rooms))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdate includes the synced write each change makes.
func BenchmarkUpdate(b *testing.B) {
	env := newTestEnv(b, nil)
	ctx := context.Background()
	if _, err := env.rooms.Create(ctx, "r", spec("R")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := env.rooms.Update(ctx, "r", &actorpb.RoomPatch{Name: ptr(fmt.Sprint(i))}); err != nil {
			b.Fatal(err)
		}
	}
}
