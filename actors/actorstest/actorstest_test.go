package actorstest

import (
	"testing"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// mod sees the configuration Start built; a room created through the
// started actors is in the started store; everything stops with the test.
func TestStart(t *testing.T) {
	for _, media := range []bool{false, true} {
		t.Run(map[bool]string{false: "without media", true: "with media"}[media], func(t *testing.T) {
			leaktest.Check(t)
			var seen actors.Config
			s := Start(t, media, func(c *actors.Config) { seen = *c })
			if seen.Store != s.Store || seen.RequestTimeout != RequestTimeout || (seen.Media != nil) != media {
				t.Errorf("mod saw store %v, timeout %v, media %v", seen.Store, seen.RequestTimeout, seen.Media)
			}
			if (s.Engine != nil) != media || (s.Metrics != nil) != media {
				t.Errorf("media %v: engine %v, metrics %v", media, s.Engine, s.Metrics)
			}
			name := "Stage"
			if _, err := s.Rooms.Create(t.Context(), "stage", &actorpb.RoomPatch{Name: &name}); err != nil {
				t.Fatal(err)
			}
			r, err := s.Store.GetRoom(t.Context(), "stage")
			if err != nil || r.GetName() != name {
				t.Fatalf("stored room %v, %v", r, err)
			}
		})
	}
}
