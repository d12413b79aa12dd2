package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// deleteCluster is nodes of a cluster sharing one store of record (a
// client of an embedded etcd), each recording into a directory of its own, that find
// each other through urls (a node not in it is down).
type deleteCluster struct {
	store *etcdstore.Store
	urls  nodeURLs
	first *stack
	dirs  map[string]string
}

func newDeleteCluster(t *testing.T) *deleteCluster {
	t.Helper()
	endpoint, _ := etcdtest.Start(t)
	store, err := etcdstore.New(context.Background(), etcdstore.Config{Endpoints: []string{endpoint}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &deleteCluster{store: store, urls: nodeURLs{}, dirs: map[string]string{}}
}

// start starts node id over dir (a node started again keeps its
// directory) and lists it as up.
func (dc *deleteCluster) start(t *testing.T, id, dir string) *stack {
	t.Helper()
	first := dc.first
	s := buildStack(t, func(c *Config) {
		c.Owners, c.NodeID = dc.urls, id
		if first != nil {
			c.Verifier, c.SigningKey = first.api.cfg.Verifier, first.api.cfg.SigningKey // one key pair, as in a cluster
		}
	}, func(c *actors.Config) {
		c.Store, c.Recording = dc.store, actors.RecordingConfig{Dir: dir, NodeID: id}
	}, false)
	if first != nil {
		s.admin = first.admin
	} else {
		dc.first = s
	}
	dc.urls[id], dc.dirs[id] = s.srv.URL, dir
	return s
}

// partsRecording stores a completed recording of studio in two parts,
// part 1's file on node-a and part 2's on node-b, and writes each file
// in its node's directory (node-b's in dirB, which may be a node that is
// not started yet).
func partsRecording(t *testing.T, store persistence.Backend, dirA, dirB string) *recordpb.Recording {
	t.Helper()
	rec := &recordpb.Recording{
		Id: "rec_deleted", RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
		Layout: "participant", NodeId: "node-b", Part: 2, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		Files: []*recordpb.RecordingFile{
			{Name: "PA_1.webm", Container: "webm", Codecs: []string{"opus"}, Size: 6, Part: 1, NodeId: "node-a"},
			{Name: "PA_1-part2.webm", Container: "webm", Codecs: []string{"opus"}, Size: 6, Part: 2, NodeId: "node-b"},
		},
	}
	if err := store.Apply(context.Background(), persistence.Writes{Recordings: []*recordpb.Recording{rec}}); err != nil {
		t.Fatal(err)
	}
	for dir, name := range map[string]string{dirA: "PA_1.webm", dirB: "PA_1-part2.webm"} {
		writeRecordingFile(t, dir, rec.Id, name)
	}
	return rec
}

func writeRecordingFile(t *testing.T, dir, id, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, id), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id, name), []byte("troupe"), 0o640); err != nil {
		t.Fatal(err)
	}
}

func mustBeGone(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestDeleteRecordingOnNodes: a recording with a part on each of two
// nodes is deleted with every file, wherever the DELETE lands: the node
// answering it removes the record and its own files and asks the other
// node to remove its part's files.
func TestDeleteRecordingOnNodes(t *testing.T) {
	dc := newDeleteCluster(t)
	a := dc.start(t, "node-a", t.TempDir())
	b := dc.start(t, "node-b", t.TempDir())
	a.createRoom(t, `{"id":"studio","name":"Studio"}`)
	rec := partsRecording(t, dc.store, dc.dirs["node-a"], dc.dirs["node-b"])

	mustStatus(t, b.do(t, http.MethodDelete, "/api/v1/recordings/"+rec.Id, ""), http.StatusNoContent)
	for node, dir := range dc.dirs {
		mustBeGone(t, "the recording's directory on "+node, filepath.Join(dir, rec.Id))
	}
	mustStatus(t, a.do(t, http.MethodGet, "/api/v1/recordings/"+rec.Id, ""), http.StatusNotFound)
	mustStatus(t, a.do(t, http.MethodDelete, "/api/v1/recordings/"+rec.Id, ""), http.StatusNotFound)
}

// TestDeleteRecordingNodeDown: a DELETE answers 204 once the record is
// gone while the node holding a part is down; that node removes the part's
// files at its next start, and keeps the directory of a recording that
// still exists.
func TestDeleteRecordingNodeDown(t *testing.T) {
	dc := newDeleteCluster(t)
	a := dc.start(t, "node-a", t.TempDir())
	a.createRoom(t, `{"id":"studio","name":"Studio"}`)
	dirB := t.TempDir() // node-b's, down
	rec := partsRecording(t, dc.store, dc.dirs["node-a"], dirB)
	kept := &recordpb.Recording{
		Id: "rec_kept", RoomId: "studio", SessionId: "ses_1", Status: recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED,
		Layout: "participant", NodeId: "node-b", Part: 1, CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now(),
		Files: []*recordpb.RecordingFile{{Name: "PA_1.webm", Container: "webm", Codecs: []string{"opus"}, Size: 6, Part: 1, NodeId: "node-b"}},
	}
	if err := dc.store.Apply(context.Background(), persistence.Writes{Recordings: []*recordpb.Recording{kept}}); err != nil {
		t.Fatal(err)
	}
	writeRecordingFile(t, dirB, kept.Id, "PA_1.webm")
	writeRecordingFile(t, dirB, "not-a-recording", "notes.txt")

	mustStatus(t, a.do(t, http.MethodDelete, "/api/v1/recordings/"+rec.Id, ""), http.StatusNoContent)
	mustBeGone(t, "the recording's directory on node-a", filepath.Join(dc.dirs["node-a"], rec.Id))
	if _, err := os.Stat(filepath.Join(dirB, rec.Id, "PA_1-part2.webm")); err != nil {
		t.Fatalf("node-b's files, while it is down: %v", err)
	}

	dc.start(t, "node-b", dirB)
	mustBeGone(t, "the deleted recording's directory on node-b after its start", filepath.Join(dirB, rec.Id))
	for _, path := range []string{filepath.Join(dirB, kept.Id, "PA_1.webm"), filepath.Join(dirB, "not-a-recording", "notes.txt")} {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s after node-b's start: %v", path, err)
		}
	}
}

// TestRemoveFilesOfExistingRecording: a request to remove a node's files
// of a recording that exists, as one node asks another for a deleted
// recording's, is refused and removes nothing; a bad id is not found.
func TestRemoveFilesOfExistingRecording(t *testing.T) {
	dc := newDeleteCluster(t)
	a := dc.start(t, "node-a", t.TempDir())
	b := dc.start(t, "node-b", t.TempDir())
	rec := partsRecording(t, dc.store, dc.dirs["node-a"], dc.dirs["node-b"])

	for _, s := range []*stack{a, b} {
		path := "/api/v1/recordings/" + rec.Id + "/files"
		r := s.do(t, http.MethodDelete, path, "", s.forwardedFrom("node-c", http.MethodDelete, path)...)
		if r.status != http.StatusConflict || r.errorCode(t) != codeRecordingNotDeleted {
			t.Fatalf("remove the files of a recording that exists: %d %s", r.status, r.body)
		}
	}
	for node, dir := range dc.dirs {
		if _, err := os.Stat(filepath.Join(dir, rec.Id)); err != nil {
			t.Fatalf("the recording's files on %s after a refused removal: %v", node, err)
		}
	}
	if r := b.do(t, http.MethodDelete, "/api/v1/recordings/rec_../files", ""); r.status != http.StatusNotFound || r.errorCode(t) != codeRecordingNotFound {
		t.Fatalf("a recording id that reaches outside the directory: %d %s", r.status, r.body)
	}
	got := a.do(t, http.MethodGet, "/api/v1/recordings/"+rec.Id, "").json(t)
	if files, _ := got["files"].([]any); len(files) != 2 || got["id"] != rec.Id {
		t.Fatalf("the recording after a refused removal: %v", got)
	}
}
