package actors

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
)

// The cluster's store is what settleLostParts writes the figures through.
var _ recordingFileSettler = (*etcdstore.Store)(nil)

// TestRestartedNodeSettlesLostPart: node-a records a room and loses its
// lease: its writer closes part 1's file, but the record, which node-a may
// no longer write, lists the file as it was last listed. node-b takes the
// room over and goes on with the recording as part 2. When node-a starts
// again it finalizes its part's file and writes the file's size and
// duration into the record node-b holds; node-b's later writes of the
// record, from its copy (part 2's file opened, the recording's end), keep
// them.
func TestRestartedNodeSettlesLostPart(t *testing.T) {
	ctx := context.Background()
	c := startClusterRecording(t)
	a, dirA, storeA, rec, id := c.env, c.dir, c.store, c.rec, c.id
	var name string
	poll.Until(t, "a second of video sent, its file listed", func() bool {
		stored, err := storeA.GetRecording(ctx, rec.Id)
		if err != nil || len(stored.Files) != 1 {
			return false
		}
		name = stored.Files[0].Name
		return c.video.Sent() >= c.from+100
	})
	endLease(t, c.endpoint, a, storeA)
	path := filepath.Join(dirA, rec.Id, name)
	if _, err := os.Stat(filepath.Join(dirA, rec.Id, openMarker)); err != nil {
		t.Fatalf("the mark of the part node-a lost: %v", err)
	}

	b, _, storeB := clusterRecordingEnv(t, c.endpoint, "node-b")
	taken := takeOverRecording(t, b, id)

	// node-a starts again, on its recordings directory.
	a.stop()
	storeA = clusterNode(t, c.endpoint, "node-a")
	runRooms(t, Config{Store: storeA, Owners: storeOwners{storeA}, Recording: RecordingConfig{Dir: dirA, NodeID: "node-a"}})
	if _, err := os.Stat(filepath.Join(dirA, rec.Id, openMarker)); !os.IsNotExist(err) {
		t.Fatalf("the mark of the lost part after node-a's start: %v", err)
	}
	held, err := recorder.Finalize(path) // finalized already: changes nothing
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	size, ms := uint64(info.Size()), uint64(held.Duration.Milliseconds()) //nolint:gosec // not negative
	if f := taken.Files[0]; ms == 0 || f.Size == size && f.DurationMs == ms {
		t.Fatalf("the file on node-a holds %d bytes, %d ms; the record node-b took listed %v: nothing to settle", size, ms, f)
	}
	checkSettled := func(what string, got *recordpb.Recording) {
		t.Helper()
		i := slices.IndexFunc(got.Files, func(f *recordpb.RecordingFile) bool { return f.Name == name && f.NodeId == "node-a" })
		if i < 0 {
			t.Fatalf("%s: part 1's file is not listed: %v", what, got.Files)
		}
		if f := got.Files[i]; f.Size != size || f.DurationMs != ms || f.Part != 1 || f.Writing || !f.Settled {
			t.Fatalf("%s: part 1's file listed as %v; it holds %d bytes, %d ms", what, f, size, ms)
		}
	}
	stored, err := storeB.GetRecording(ctx, rec.Id)
	if err != nil {
		t.Fatal(err)
	}
	checkSettled("after node-a's start", stored)
	if stored.Part != 2 || stored.NodeId != "node-b" || stored.Status != recordpb.RecordingStatus_RECORDING_STATUS_RECORDING {
		t.Fatalf("node-a's start changed more than its file: %v", stored)
	}

	// node-b writes the record again, from its copy: part 2's file as it
	// opens, then the recording's end.
	pub2 := joinClient(t, b, "studio", "pub", RolePublisher)
	pub2.publishAV()
	poll.Until(t, "part 2's file listed", func() bool {
		stored, err = storeB.GetRecording(ctx, rec.Id)
		return err == nil && slices.ContainsFunc(stored.Files, func(f *recordpb.RecordingFile) bool { return f.Part == 2 })
	})
	checkSettled("after part 2's file was listed", stored)
	if _, err := b.rooms.StopRecording(ctx, id); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the recording completed", func() bool {
		stored, err = storeB.GetRecording(ctx, rec.Id)
		return err == nil && recordingEnded(stored)
	})
	if stored.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || len(stored.Files) != 2 {
		t.Fatalf("the recording stopped: %v", stored)
	}
	checkSettled("at the recording's end", stored)
}
