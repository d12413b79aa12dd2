package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// putEndedRecordings stores completed recordings with the ids given in
// the cluster's etcd at endpoint, as the owners of their rooms wrote them.
func putEndedRecordings(t *testing.T, endpoint string, ids ...string) {
	t.Helper()
	store, err := etcdstore.New(context.Background(), etcdstore.Config{Endpoints: []string{endpoint},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var w persistence.Writes
	for _, id := range ids {
		w.Recordings = append(w.Recordings, &recordpb.Recording{
			Id: id, RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
			Layout: LayoutParticipant, NodeId: "node-b", Part: 2, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		})
	}
	if err := store.Apply(context.Background(), w); err != nil {
		t.Fatal(err)
	}
}

// recordingDirs makes a directory holding a file in dir for each name.
func recordingDirs(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "PA_1.webm"), []byte("troupe"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// checkDirs fails unless each of gone is missing from dir and each of
// kept is there with its file.
func checkDirs(t *testing.T, dir string, gone, kept []string) {
	t.Helper()
	for _, name := range gone {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s after the start: %v", name, err)
		}
	}
	for _, name := range kept {
		if _, err := os.Stat(filepath.Join(dir, name, "PA_1.webm")); err != nil {
			t.Errorf("%s after the start: %v", name, err)
		}
	}
}

// startRecordingNode starts node-a of the cluster at endpoint, recording
// into dir, until the test ends.
func startRecordingNode(t *testing.T, endpoint, dir string) *Rooms {
	t.Helper()
	store := clusterNode(t, endpoint, "node-a")
	return runRooms(t, Config{Store: store, Owners: storeOwners{store}, Recording: RecordingConfig{Dir: dir, NodeID: "node-a"}})
}

// TestStartRemovesDeletedRecordings: a cluster node removes at its start
// the directories of recordings deleted while it was down (one it was
// writing when it died too), and keeps those of recordings the store of
// record has, and anything that is not a recording's directory.
func TestStartRemovesDeletedRecordings(t *testing.T) {
	dir := t.TempDir()
	recordingDirs(t, dir, "rec_deleted", "rec_deleted_open", "rec_kept", "notes")
	if err := os.WriteFile(filepath.Join(dir, "rec_deleted_open", openMarker), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	endpoint, _ := etcdtest.Start(t)
	putEndedRecordings(t, endpoint, "rec_kept")
	startRecordingNode(t, endpoint, dir)
	checkDirs(t, dir, []string{"rec_deleted", "rec_deleted_open"}, []string{"rec_kept", "notes"})
}

// TestSingleNodeStartRemovesDeletedRecordings: a single node removes at
// its start the directory of a recording whose record is gone (its
// delete stopped between the record and the files), and keeps one whose
// record exists.
func TestSingleNodeStartRemovesDeletedRecordings(t *testing.T) {
	dir := t.TempDir()
	recordingDirs(t, dir, "rec_deleted", "rec_kept")
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	kept := &recordpb.Recording{
		Id: "rec_kept", RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
		Layout: LayoutParticipant, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
	}
	if err := store.Apply(context.Background(), persistence.Writes{Recordings: []*recordpb.Recording{kept}}); err != nil {
		t.Fatal(err)
	}
	runRooms(t, Config{Store: store, Recording: RecordingConfig{Dir: dir}})
	checkDirs(t, dir, []string{"rec_deleted"}, []string{"rec_kept"})
}

// TestRemoveDeletedRecordingFilesRefused: a node asked to remove its
// files of a recording whose record exists refuses and removes nothing;
// an id that is no recording's is not found.
func TestRemoveDeletedRecordingFilesRefused(t *testing.T) {
	dir := t.TempDir()
	endpoint, _ := etcdtest.Start(t)
	putEndedRecordings(t, endpoint, "rec_kept")
	recordingDirs(t, dir, "rec_kept")
	rooms := startRecordingNode(t, endpoint, dir)
	ctx := context.Background()
	if err := rooms.RemoveDeletedRecordingFiles(ctx, "rec_kept"); !errors.Is(err, ErrRecordingNotDeleted) {
		t.Fatalf("remove the files of a recording that exists: %v", err)
	}
	for _, id := range []RecordingID{"", "rec_", "..", "rec_..", "rec_a/b", "notes"} {
		if err := rooms.RemoveDeletedRecordingFiles(ctx, id); !errors.Is(err, ErrRecordingNotFound) {
			t.Errorf("remove the files of %q: %v", id, err)
		}
	}
	checkDirs(t, dir, nil, []string{"rec_kept"})
	if err := rooms.RemoveDeletedRecordingFiles(ctx, "rec_never"); err != nil {
		t.Fatalf("remove the files of a recording this node never had: %v", err)
	}
}
