package etcdstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// continuedRecording is a recording whose part 1 node-a wrote, continued
// as part 2 by node-b, the room's owner: node-a's file listed as node-b
// last knew it.
func continuedRecording() *recordpb.Recording {
	return &recordpb.Recording{
		Id: "rec_1", RoomId: "r1", Status: recordpb.RecordingStatus_RECORDING_STATUS_RECORDING,
		Layout: "participant", NodeId: "node-b", Part: 2, CreatedAt: timestamppb.New(t0), UpdatedAt: timestamppb.New(t0),
		Files: []*recordpb.RecordingFile{
			{Name: "PA_1.webm", ParticipantId: "PA_1", Container: "webm", Size: 100, Part: 1, NodeId: "node-a"},
			{Name: "PA_1-part2.webm", ParticipantId: "PA_1", Container: "webm", Size: 50, Part: 2, NodeId: "node-b", Writing: true},
		},
	}
}

// writeRecording writes rec as the room's owner does.
func writeRecording(t *testing.T, s *etcdstore.Store, rec *recordpb.Recording) {
	t.Helper()
	if err := s.Apply(context.Background(), persistence.Writes{Recordings: []*recordpb.Recording{rec}}); err != nil {
		t.Fatalf("write the recording: %v", err)
	}
}

// TestSettleRecordingFiles: a node that finalized the files of a part it
// lost writes their figures into the record another node owns, without
// the room's ownership: those entries alone change, marked settled, and
// a file the record missed is added. The owner's later writes, from its
// copy that lists the files as they were, keep the settled figures.
func TestSettleRecordingFiles(t *testing.T) {
	ctx := context.Background()
	_, a, _, b := twoNodes(t)
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	owners := continuedRecording()
	writeRecording(t, b, owners)

	at := t0.Add(time.Minute)
	finalized := []*recordpb.RecordingFile{
		{Name: "PA_1.webm", Container: "webm", Size: 9000, DurationMs: 4000, Part: 1, NodeId: "node-a"},
		{Name: "PB_2.webm", Container: "webm", Size: 700, DurationMs: 300, Part: 1, NodeId: "node-a"},
	}
	got, err := a.SettleRecordingFiles(ctx, "rec_1", finalized, at)
	if err != nil {
		t.Fatalf("SettleRecordingFiles: %v", err)
	}
	want := continuedRecording()
	want.UpdatedAt = timestamppb.New(at)
	want.Files[0].Size, want.Files[0].DurationMs, want.Files[0].Settled = 9000, 4000, true
	want.Files = append(want.Files, &recordpb.RecordingFile{Name: "PB_2.webm", Container: "webm", Size: 700, DurationMs: 300,
		Part: 1, NodeId: "node-a", Settled: true})
	if stored, err := a.GetRecording(ctx, "rec_1"); err != nil || !proto.Equal(got, want) || !proto.Equal(stored, want) {
		t.Fatalf("the record settled:\n returned %v\n stored   %v (%v)\n want     %v", got, stored, err, want)
	}
	// Settling the same figures again changes nothing.
	if _, err := a.SettleRecordingFiles(ctx, "rec_1", finalized, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if stored, err := a.GetRecording(ctx, "rec_1"); err != nil || !proto.Equal(stored, want) {
		t.Fatalf("settled twice: %v (%v)", stored, err)
	}

	// The owner writes its copy: its own part's file grew; node-a's
	// files are as it last knew them, or missing.
	owners.Files[1].Size = 80
	writeRecording(t, b, owners)
	want.Files[1].Size, want.UpdatedAt = 80, owners.UpdatedAt
	if stored, err := b.GetRecording(ctx, "rec_1"); err != nil || !proto.Equal(stored, want) {
		t.Fatalf("the owner's write after the settle:\n stored %v (%v)\n want   %v", stored, err, want)
	}
	if owners.Files[0].Settled || len(owners.Files) != 2 {
		t.Fatalf("Apply changed the record it was given: %v", owners)
	}

	// Bad requests change nothing.
	for name, files := range map[string][]*recordpb.RecordingFile{
		"another node's file": {{Name: "PA_1-part2.webm", Size: 1, Part: 2, NodeId: "node-b"}},
		"a file without part": {{Name: "PA_1.webm", Size: 1, NodeId: "node-a"}},
		"a file without name": {{Size: 1, Part: 1, NodeId: "node-a"}},
	} {
		if _, err := a.SettleRecordingFiles(ctx, "rec_1", files, at); !errors.Is(err, persistence.ErrInvalid) {
			t.Errorf("settle %s = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := a.SettleRecordingFiles(ctx, "rec_none", finalized, at); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("settle the files of no recording = %v, want ErrNotFound", err)
	}
	plain := open(t, startEtcd(t), "plain/", nil)
	if _, err := plain.SettleRecordingFiles(ctx, "rec_1", finalized, at); !errors.Is(err, persistence.ErrInvalid) {
		t.Errorf("settle on a store that is no node's = %v, want ErrInvalid", err)
	}
	if stored, err := b.GetRecording(ctx, "rec_1"); err != nil || !proto.Equal(stored, want) {
		t.Fatalf("the record after refused settles: %v (%v)", stored, err)
	}
}

// TestSettleRecordingFilesBesideOwnerWrites: the settle and the owner's
// writes of the record race; whichever commits first, the other reads
// again, so the record ends with both: the settled figures of node-a's
// file and the owner's last write of its own.
func TestSettleRecordingFilesBesideOwnerWrites(t *testing.T) {
	ctx := context.Background()
	_, a, _, b := twoNodes(t)
	if err := b.Claim(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	writeRecording(t, b, continuedRecording())
	const writes = 30
	var wg sync.WaitGroup
	errs := make(chan error, writes+1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range writes {
			rec := continuedRecording()
			rec.Files[1].Size = uint64(100 + i)
			errs <- b.Apply(ctx, persistence.Writes{Recordings: []*recordpb.Recording{rec}})
		}
	}()
	go func() {
		defer wg.Done()
		_, err := a.SettleRecordingFiles(ctx, "rec_1", []*recordpb.RecordingFile{
			{Name: "PA_1.webm", Container: "webm", Size: 9000, DurationMs: 4000, Part: 1, NodeId: "node-a"},
		}, t0)
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	stored, err := b.GetRecording(ctx, "rec_1")
	if err != nil {
		t.Fatal(err)
	}
	if f := stored.Files[0]; len(stored.Files) != 2 || !f.Settled || f.Size != 9000 || f.DurationMs != 4000 || f.Writing {
		t.Fatalf("node-a's file after the race: %v", stored.Files)
	}
	if f := stored.Files[1]; f.Size != 100+writes-1 || f.Settled {
		t.Fatalf("the owner's file after the race: %v, want its last write (%d bytes)", f, 100+writes-1)
	}
}
