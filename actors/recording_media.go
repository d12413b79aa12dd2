package actors

// This file owns a recording's media writer (rtc/recorder): where it
// writes, which forwarders feed it (each a sink of one published track),
// how its keyframe requests reach a publisher, and what its files become
// in the record. Packets go from a forwarder's read loop to the writer's
// queue; the room actor only attaches and detaches tracks.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
	"github.com/troupe-media/troupe/rtc/recorder"
)

// recordingMedia is one recording's writer and the tracks that feed it.
type recordingMedia struct {
	w *recorder.Recorder
	// srcs maps a track id to its published track, for the writer's
	// keyframe requests, which come from its own goroutine.
	srcs sync.Map
	// tracks are the attached tracks; only the room actor touches it.
	tracks map[TrackID]*recordedTrack
	// part is the part of the recording it writes, on node.
	part uint32
	node string

	closeOnce sync.Once
	files     []*recordpb.RecordingFile // set once close returns
	closeErr  error
}

type recordedTrack struct {
	src *rtc.Track
	t   *recorder.Track
}

// openMarker is the file a node keeps in a recording's directory while it
// writes a part there: one left behind (a crash, or a part its node lost
// with its lease) names files to finalize (settleLostParts).
const openMarker = ".open"

// startMedia opens the writer of rec's current part in the recording's
// directory. A later part (after a failover) names its files by its part
// and keeps the first part's clock (its started_at); each file is recorded
// as it opens (recordingFileOpened).
func (a *roomActor) startMedia(rec *recordpb.Recording) (*recordingMedia, error) {
	cfg := a.deps.cfg.Recording
	dir := filepath.Join(cfg.Dir, rec.Id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, openMarker), nil, 0o600); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	m := &recordingMedia{tracks: make(map[TrackID]*recordedTrack), part: recordingPart(rec), node: cfg.NodeID}
	layout, err := recorder.ParseLayout(rec.Layout)
	if err != nil {
		return nil, err
	}
	part := m.part
	var origin time.Time
	if part > 1 && rec.StartedAt != nil {
		origin = rec.StartedAt.AsTime()
	}
	self, root, id := a.self, a.deps.system.Root, rec.Id
	w, err := recorder.New(recorder.Config{
		Dir: dir, Layout: layout, AudioOnly: rec.AudioOnly, MinFreeBytes: cfg.MinFreeBytes, FreeSpace: cfg.FreeSpace,
		Part: int(part), Origin: origin,
		OnFile: func(f recorder.File) {
			root.Send(self, &recordingFileOpened{id: id, file: fileRecord(f, part, cfg.NodeID)})
		},
		RequestKeyframe: m.requestKeyframe,
		// Losses are NACKed to the publisher by the receiving side's NACK
		// generator already; what it recovers reaches the writer through
		// the forwarder, so the writer asks for nothing more.
		RequestNACK: nil,
		Metrics:     a.deps.metrics.recorder,
		Logger:      a.log.With("recording", rec.Id),
		Clock:       a.deps.cfg.Clock,
	})
	if err != nil {
		return nil, err
	}
	m.w = w
	return m, nil
}

// requestKeyframe asks for a keyframe of the layer a track's recording
// takes.
func (m *recordingMedia) requestKeyframe(trackID string) {
	if src, ok := m.srcs.Load(TrackID(trackID)); ok {
		if fwd := src.(*rtc.Track).SinkLayer(); fwd != nil {
			fwd.RequestKeyframe()
		}
	}
}

// attach makes the writer a sink of a member's published track id: of
// its highest layer that arrives, as layers start and stop (one stream in
// the file all the same: the writer starts each layer it is moved to on a
// keyframe).
func (m *recordingMedia) attach(info ParticipantInfo, id TrackID, src *rtc.Track) error {
	if _, ok := m.tracks[id]; ok {
		return nil
	}
	rt, err := m.w.AddTrack(recorder.TrackInfo{
		ParticipantID: string(info.ID), Identity: info.Identity, TrackID: string(id),
		Kind: src.Kind(), Codec: src.Codec(),
	})
	if err != nil {
		return err
	}
	m.tracks[id] = &recordedTrack{src: src, t: rt}
	m.srcs.Store(id, src)
	src.SetSink(func() rtc.Sink { return &trackSink{t: rt} })
	return nil
}

// detach ends a track's part of the recording.
func (m *recordingMedia) detach(id TrackID) {
	rt, ok := m.tracks[id]
	if !ok {
		return
	}
	rt.src.SetSink(nil)
	rt.t.Close()
	m.srcs.Delete(id)
	delete(m.tracks, id)
}

func (m *recordingMedia) detachAll() {
	for id := range m.tracks {
		m.detach(id)
	}
}

func (m *recordingMedia) done() <-chan struct{} { return m.w.Done() }
func (m *recordingMedia) err() error            { return m.w.Err() }

// close closes the writer's files and returns them as the record keeps
// them. It runs once; closed returns its result afterwards.
func (m *recordingMedia) close(ctx context.Context) ([]*recordpb.RecordingFile, error) {
	m.closeOnce.Do(func() {
		files, err := m.w.Close(ctx)
		m.files, m.closeErr = fileRecords(files, m.part, m.node), err
	})
	return m.files, m.closeErr
}

// fileRecords are files of part, on node, as the record keeps them.
func fileRecords(files []recorder.File, part uint32, node string) []*recordpb.RecordingFile {
	out := make([]*recordpb.RecordingFile, len(files))
	for i, f := range files {
		out[i] = fileRecord(f, part, node)
	}
	return out
}

func fileRecord(f recorder.File, part uint32, node string) *recordpb.RecordingFile {
	return &recordpb.RecordingFile{
		Name: f.Name, ParticipantId: f.ParticipantID, Identity: f.Identity, TrackIds: f.TrackIDs,
		Codecs: f.Codecs, Container: f.Container, Size: uint64(max(f.Size, 0)),
		DurationMs: uint64(max(f.Duration.Milliseconds(), 0)),
		Part:       part, NodeId: node, Writing: f.Writing,
	}
}

// recordingPart is the part rec is writing (1 for a record from before
// parts).
func recordingPart(rec *recordpb.Recording) uint32 { return max(rec.Part, 1) }

// filePart is the part a file belongs to (1 for a record from before
// parts), and fileNode the node holding it.
func filePart(f *recordpb.RecordingFile) uint32 { return max(f.Part, 1) }

func fileNode(rec *recordpb.Recording, f *recordpb.RecordingFile) string {
	if f.NodeId == "" && f.Part == 0 {
		return rec.NodeId // a record from before parts: one node held them all
	}
	return f.NodeId
}

// withPartFiles returns files with those of part replaced by current: the
// record's files of the other parts, then the part's as its writer lists
// them now.
func withPartFiles(files []*recordpb.RecordingFile, part uint32, current []*recordpb.RecordingFile) []*recordpb.RecordingFile {
	out := make([]*recordpb.RecordingFile, 0, len(files)+len(current))
	for _, f := range files {
		if filePart(f) != part {
			out = append(out, f)
		}
	}
	return append(out, current...)
}

// CurrentRecording returns recording id as Recording does, and, while it
// runs, the files being written as they are now (their size and duration
// so far). The node writing it lists them: on another node of a cluster
// the request is refused with a *NotOwnerError naming that node, for the
// HTTP edge to forward it there, while that node owns the room; when it
// does not (it was lost) or the request was forwarded already, the record
// is answered as it is.
func (r *Rooms) CurrentRecording(ctx context.Context, id RecordingID) (*recordpb.Recording, error) {
	rec, err := r.Recording(ctx, id)
	if err != nil || recordingEnded(rec) {
		return rec, err
	}
	if v, ok := r.writing.Load(rec.Id); ok {
		files, err := v.(*recordingMedia).w.Files(ctx)
		if err != nil {
			return nil, fmt.Errorf("recording files: %w", err)
		}
		part := recordingPart(rec)
		rec.Files = withPartFiles(rec.Files, part, fileRecords(files, part, r.cfg.Recording.NodeID))
		return rec, nil
	}
	if r.cfg.Owners != nil && rec.NodeId != "" && rec.NodeId != r.cfg.Recording.NodeID && !IsForwarded(ctx) {
		if owner, ok := r.cfg.Owners.Elsewhere(rec.RoomId); ok && owner == rec.NodeId {
			return nil, &NotOwnerError{RoomID: RoomID(rec.RoomId), Owner: owner}
		}
	}
	return rec, nil
}

// closed is close's result, once it has returned.
func (m *recordingMedia) closed() ([]*recordpb.RecordingFile, error) { return m.files, m.closeErr }

// closeMediaNow closes a writer whose recording could not be recorded as
// started: its files are left for the start-up's clean-up.
func (a *roomActor) closeMediaNow(m *recordingMedia) {
	m.detachAll()
	ctx, cancel := a.storeCtx()
	defer cancel()
	if _, err := m.close(ctx); err != nil {
		a.log.Warn("close recording writer", "err", err)
	}
}

// trackSink hands a forwarder's packets and its publisher's sender
// reports to a recorded track. Each layer a track's recording takes gets
// its own: the layer's read loop is WriteRTP's only caller, so its packet
// is reused.
type trackSink struct {
	t   *recorder.Track
	pkt rtp.Packet
}

func (s *trackSink) WriteRTP(b []byte) {
	if err := s.pkt.Unmarshal(b); err != nil {
		return // the forwarder parsed it already: not expected
	}
	s.t.WriteRTP(&s.pkt)
}

// WriteSenderReport puts the track on its publisher's clock, which the
// recording maps all of the participant's tracks through.
func (s *trackSink) WriteSenderReport(sr rtc.SenderReport) {
	s.t.WriteSenderReport(sr.SSRC, sr.NTP, sr.RTPTime)
}

func isDiskFull(err error) bool { return errors.Is(err, recorder.ErrDiskFull) }

// removeOwnRecordingFiles removes, once rec's record is deleted, its
// directory on this node and what it holds. The record is gone already, so
// a failure is logged rather than returned: the directory, which no
// recording names any more, is removed at this node's next start
// (removeDeletedRecordings). The other nodes that hold files of it are
// asked to remove theirs by the HTTP edge (FileNodes).
func (r *Rooms) removeOwnRecordingFiles(rec *recordpb.Recording) {
	if r.cfg.Recording.Dir == "" {
		return
	}
	if err := os.RemoveAll(filepath.Join(r.cfg.Recording.Dir, rec.Id)); err != nil {
		r.cfg.Logger.Warn("remove a deleted recording's files; they are removed at the next start", "recording", rec.Id, "err", err)
	}
}

// FileNodes returns the nodes that hold files of rec, each once: those of
// its files, and the node of its last part (which made its directory even
// if it opened no file). A recording from a single node names none.
func FileNodes(rec *recordpb.Recording) []string {
	var nodes []string
	add := func(n string) {
		if n != "" && !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	add(rec.NodeId)
	for _, f := range rec.Files {
		add(fileNode(rec, f))
	}
	return nodes
}

// RemoveDeletedRecordingFiles removes this node's directory of recording
// id, whose record another node deleted (the owner of its room, answering
// a DELETE): this node held files of a part of it. A recording whose
// record still exists, or that this node is writing, is refused with
// ErrRecordingNotDeleted (removeDeletedRecordingDir). A directory that is
// not there is no error: the request may come twice.
func (r *Rooms) RemoveDeletedRecordingFiles(ctx context.Context, id RecordingID) error {
	if !isRecordingDirName(string(id)) {
		return ErrRecordingNotFound
	}
	if r.cfg.Recording.Dir == "" {
		return ErrRecordingUnavailable
	}
	return r.removeDeletedRecordingDir(ctx, string(id))
}

// removeDeletedRecordingDir removes the directory of recording id, a
// recording directory's name, once the recording's record is gone: one
// whose record exists, or that this node is writing, is kept and gets
// ErrRecordingNotDeleted, so that nothing but the deletion of a recording
// removes its files. The store asked is the store of record (etcd in a
// cluster), not a cache, so that a recording just started is found; one
// that does not answer keeps the directory too. Both a deleting node's
// request (RemoveDeletedRecordingFiles) and the start-up's clean-up
// (removeDeletedRecordings) remove by this rule.
func (r *Rooms) removeDeletedRecordingDir(ctx context.Context, id string) error {
	if _, ok := r.writing.Load(id); ok {
		return ErrRecordingNotDeleted
	}
	switch _, err := r.cfg.Store.GetRecording(ctx, id); {
	case err == nil:
		return ErrRecordingNotDeleted
	case !errors.Is(err, persistence.ErrNotFound):
		return fmt.Errorf("get recording: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(r.cfg.Recording.Dir, id)); err != nil {
		return fmt.Errorf("remove recording files: %w", err)
	}
	r.cfg.Logger.Info("removed the files of a deleted recording", "recording", id)
	return nil
}

// isRecordingDirName reports whether name can be a recording's directory:
// a recording id ("rec_" and what randomID makes), nothing that reaches
// outside the recordings directory, so that neither a request nor the
// start-up's clean-up touches anything else there.
func isRecordingDirName(name string) bool {
	return strings.HasPrefix(name, "rec_") && len(name) > len("rec_") && ValidateFileName(name) == nil
}
