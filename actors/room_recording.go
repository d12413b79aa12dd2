package actors

// This file owns the room's recording: its start and stop, the record's
// life (starting, recording, stopping, then completed or failed) written
// with its events, the limits it runs under (a maximum duration, the free
// disk the writer watches), and its end with the session. One recording
// runs at a time in a room. The media writer is in recording_media.go; the
// packets never pass through here.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
)

// liveRecording is the room's running recording. It is kept in roomLife,
// so that a room actor restarted after a panic takes it back with the
// members: the writer never needed the actor to go on writing.
type liveRecording struct {
	rec   *recordpb.Recording
	media *recordingMedia
	timer clock.Timer // the maximum duration; nil without one
	// relist brings the record's list of files up to date (relistEvery).
	relist clock.Timer
	// stopping: the writer is being closed; reason says why, failure what
	// went wrong (nil for a stop asked for or a limit reached).
	stopping bool
	reason   string
	failure  error
	// started are the participants (by participant id) whose file, or
	// tracks whose file, a started event announced.
	started map[string]bool
	// wg counts the goroutines watching and closing the writer.
	wg   sync.WaitGroup
	quit chan struct{} // stops the watcher
	// ended is closed once the recording's end is written (or its write
	// failed): a stop answers the recording as it ended.
	ended chan struct{}
}

// Messages about recordings: requests from the API, and what the
// recording's goroutines and timer report.
type (
	startRecordingReq  struct{ opts RecordingOptions }
	stopRecordingReq   struct{ id RecordingID }
	deleteRecordingReq struct{ rec *recordpb.Recording }
	recordingReply     struct {
		rec *recordpb.Recording
		err error
		// ended, in a stop's answer, is closed once the recording's end
		// is written.
		ended <-chan struct{}
	}
	// recordingWriterEnded: the writer stopped on its own (disk full, a
	// write error).
	recordingWriterEnded struct {
		id  string
		err error
	}
	// recordingClosed: the writer has closed its files.
	recordingClosed struct {
		id    string
		files []*recordpb.RecordingFile
		err   error
	}
	recordingTimeout struct{ id string }
	// recordingFileOpened: the writer opened a file, which the record
	// lists from then on (so that a node taking the room over knows the
	// files of a part its writer lost).
	recordingFileOpened struct {
		id   string
		file *recordpb.RecordingFile
	}
	// recordingRelist: time to bring the record's files up to date;
	// recordingFilesNow: the writer's files as they are now.
	recordingRelist   struct{ id string }
	recordingFilesNow struct {
		id    string
		files []recorder.File
		err   error
	}
)

// relistEvery is how often a running recording's record takes its files'
// sizes and durations so far: a node that takes the room over after its
// writer is lost lists them as they were at most this long before.
const relistEvery = 10 * time.Second

func (a *roomActor) receiveRecording(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *startRecordingReq:
		rec, err := a.startRecording(m.opts)
		a.respond(ctx, &recordingReply{rec: rec, err: err})
	case *stopRecordingReq:
		lr, err := a.stopRecordingByID(m.id)
		if err != nil {
			a.respond(ctx, &recordingReply{err: err})
			break
		}
		a.respond(ctx, &recordingReply{rec: lr.rec, ended: lr.ended})
	case *deleteRecordingReq:
		a.respond(ctx, &recordingReply{err: a.deleteRecording(m.rec)})
	case *recordingWriterEnded:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id && !lr.stopping {
			a.log.Warn("recording writer stopped", "recording", m.id, "err", m.err)
			a.stopRecording(lr, writerFailureReason(m.err), m.err)
		}
	case *recordingTimeout:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id && !lr.stopping {
			a.stopRecording(lr, RecordingMaxDuration, nil)
		}
	case *recordingClosed:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id {
			a.finishRecording(lr, m.files, m.err)
		}
	case *recordingFileOpened:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id {
			a.listOpenedFile(lr, m.file)
		}
	case *recordingRelist:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id && !lr.stopping {
			a.readFiles(lr)
		}
	case *recordingFilesNow:
		if lr := a.life.recording; lr != nil && lr.rec.Id == m.id && !lr.stopping {
			a.relistFiles(lr, m.files, m.err)
		}
	default:
		return false
	}
	return true
}

// startRecording starts a recording of the running session. The record is
// written as starting (with recording-starting) before the writer opens a
// file, so that a crash at any point leaves a record to close at start-up,
// then as recording (with recording-started), or failed if the writer
// could not start.
func (a *roomActor) startRecording(opts RecordingOptions) (*recordpb.Recording, error) {
	room, err := a.current()
	if err != nil {
		return nil, err
	}
	cfg := a.deps.cfg.Recording
	switch {
	case cfg.Dir == "":
		return nil, ErrRecordingUnavailable
	case !room.Config.GetRecordingEnabled():
		return nil, ErrRecordingDisabled
	case a.life.recording != nil:
		return nil, fmt.Errorf("%w: %s", ErrRecordingRunning, a.life.recording.rec.Id)
	case a.session == nil:
		return nil, ErrNoActiveSession
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	now := timestamp(a.now())
	rec := &recordpb.Recording{
		Id: string(NewRecordingID()), RoomId: room.Id, SessionId: a.session.rec.Id,
		Status: recordpb.RecordingStatus_RECORDING_STATUS_STARTING, Layout: opts.Layout, AudioOnly: opts.AudioOnly,
		Participants: slices.Clone(opts.Participants), NodeId: cfg.NodeID, CreatedAt: now, UpdatedAt: now, Part: 1,
	}
	// The session lists its recordings: it names this one in the same write.
	ses := proto.Clone(a.session.rec).(*recordpb.Session)
	ses.RecordingIds = append(ses.RecordingIds, rec.Id)
	ses.UpdatedAt = now
	c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{rec}, Sessions: []*recordpb.Session{ses}}}
	a.recordingEvent(c, rec, "recording-starting", NewRecordingJSON(rec))
	if err := a.commit(c); err != nil {
		return nil, fmt.Errorf("start recording: %w", err)
	}
	a.session.rec = ses

	media, mediaErr := a.startMedia(rec)
	next := proto.Clone(rec).(*recordpb.Recording)
	next.UpdatedAt = timestamp(a.now())
	if mediaErr != nil {
		a.log.Error("recording writer did not start", "recording", rec.Id, "err", mediaErr)
		failed := endedRecording(next, recordpb.RecordingStatus_RECORDING_STATUS_FAILED, writerFailureReason(mediaErr), mediaErr)
		c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{failed}}}
		a.recordingEvent(c, failed, "recording-failed", NewRecordingJSON(failed))
		a.deps.metrics.recordingEnded(failed)
		if err := a.commit(c); err != nil {
			return nil, fmt.Errorf("record a failed start: %w", err)
		}
		return failed, nil
	}
	next.Status, next.StartedAt = recordpb.RecordingStatus_RECORDING_STATUS_RECORDING, next.UpdatedAt
	c = &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}
	a.recordingEvent(c, next, "recording-started", NewRecordingJSON(next))
	if err := a.commit(c); err != nil {
		// The record says starting: the room's next load
		// (closeOrphanRecordings), or the start-up after a crash, closes
		// it.
		a.closeMediaNow(media)
		return nil, fmt.Errorf("start recording: %w", err)
	}
	a.runRecording(next, media)
	return next, nil
}

// runRecording makes rec, whose writer media has started, the room's
// running recording: it watches the writer, arms the maximum duration
// (counted from the recording's start, over every part) and records the
// tracks published now.
func (a *roomActor) runRecording(rec *recordpb.Recording, media *recordingMedia) {
	lr := &liveRecording{rec: rec, media: media, started: make(map[string]bool), quit: make(chan struct{}), ended: make(chan struct{})}
	a.life.recording = lr
	a.deps.writing.Store(rec.Id, media)
	a.watchWriter(lr)
	if d := a.deps.cfg.Recording.MaxDuration; d > 0 {
		if rec.StartedAt != nil {
			d = max(d-a.now().Sub(rec.StartedAt.AsTime()), 0)
		}
		self, root, msg := a.self, a.deps.system.Root, &recordingTimeout{id: rec.Id}
		lr.timer = a.deps.cfg.Clock.AfterFunc(d, func() { root.Send(self, msg) })
	}
	a.armRelist(lr)
	for _, m := range a.memberList() {
		for _, t := range m.tracks {
			a.recordTrack(m, t)
		}
	}
}

func (a *roomActor) armRelist(lr *liveRecording) {
	self, root, msg := a.self, a.deps.system.Root, &recordingRelist{id: lr.rec.Id}
	lr.relist = a.deps.cfg.Clock.AfterFunc(relistEvery, func() { root.Send(self, msg) })
}

// readFiles asks the writer for its files, away from the actor (the
// writer may be busy); recordingFilesNow brings them back.
func (a *roomActor) readFiles(lr *liveRecording) {
	self, root, id, media, timeout := a.self, a.deps.system.Root, lr.rec.Id, lr.media, a.deps.cfg.RequestTimeout
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		files, err := media.w.Files(ctx)
		root.Send(self, &recordingFilesNow{id: id, files: files, err: err})
	}()
}

// relistFiles writes the running part's files as the writer lists them now
// into the record, when they changed, and arms the next relist.
func (a *roomActor) relistFiles(lr *liveRecording, files []recorder.File, err error) {
	defer a.armRelist(lr)
	if err != nil {
		a.log.Warn("list a recording's files", "recording", lr.rec.Id, "err", err)
		return
	}
	part := recordingPart(lr.rec)
	next := proto.Clone(lr.rec).(*recordpb.Recording)
	next.Files = withPartFiles(next.Files, part, fileRecords(files, part, lr.media.node))
	if slices.EqualFunc(next.Files, lr.rec.Files, func(x, y *recordpb.RecordingFile) bool { return proto.Equal(x, y) }) {
		return
	}
	next.UpdatedAt = timestamp(a.now())
	if err := a.commit(&changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}); err != nil {
		a.log.Warn("list a recording's files", "recording", next.Id, "err", err)
		return
	}
	lr.rec = next
}

// listOpenedFile adds a file the writer opened to the record. A failed
// write is logged: the file is listed at the recording's end all the same,
// and only a node that takes the room over before then misses it.
func (a *roomActor) listOpenedFile(lr *liveRecording, f *recordpb.RecordingFile) {
	if slices.ContainsFunc(lr.rec.Files, func(g *recordpb.RecordingFile) bool { return g.Name == f.Name }) {
		return
	}
	next := proto.Clone(lr.rec).(*recordpb.Recording)
	next.Files = append(next.Files, f)
	next.UpdatedAt = timestamp(a.now())
	if err := a.commit(&changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}); err != nil {
		a.log.Warn("list a recording file", "recording", next.Id, "file", f.Name, "err", err)
		return
	}
	lr.rec = next
}

// watchWriter reports a writer that stops on its own.
func (a *roomActor) watchWriter(lr *liveRecording) {
	self, root, id, done := a.self, a.deps.system.Root, lr.rec.Id, lr.media.done()
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		select {
		case <-done:
			root.Send(self, &recordingWriterEnded{id: id, err: lr.media.err()})
		case <-lr.quit:
		}
	}()
}

// stopRecordingByID stops the room's recording id (stopped-via-api). A
// recording that is stopping already is answered as it is. StopRecording
// read the record before asking, for its room, and found it not ended: one
// that is not the room's running recording has ended since.
func (a *roomActor) stopRecordingByID(id RecordingID) (*liveRecording, error) {
	lr := a.life.recording
	if lr == nil || lr.rec.Id != string(id) {
		return nil, ErrRecordingNotActive
	}
	if !lr.stopping {
		a.stopRecording(lr, RecordingStoppedViaAPI, nil)
	}
	return lr, nil
}

// stopRecording writes the recording as stopping (with
// recording-stopping), takes it off the tracks, and has the writer close
// its files in the background; recordingClosed finishes it.
func (a *roomActor) stopRecording(lr *liveRecording, reason string, failure error) {
	next := proto.Clone(lr.rec).(*recordpb.Recording)
	next.Status, next.UpdatedAt = recordpb.RecordingStatus_RECORDING_STATUS_STOPPING, timestamp(a.now())
	c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}
	data := NewRecordingJSON(next)
	data.EndReason = &reason
	a.recordingEvent(c, next, "recording-stopping", data)
	if err := a.commit(c); err != nil {
		// The writer stops all the same; the final write says how it ended.
		a.log.Error("record a stopping recording", "recording", next.Id, "err", err)
	} else {
		lr.rec = next
	}
	lr.stopping, lr.reason, lr.failure = true, reason, failure
	if lr.timer != nil {
		lr.timer.Stop()
	}
	if lr.relist != nil {
		lr.relist.Stop()
	}
	close(lr.quit)
	lr.media.detachAll()
	self, root, id, media, timeout := a.self, a.deps.system.Root, lr.rec.Id, lr.media, a.deps.cfg.RequestTimeout*5
	lr.wg.Add(1)
	go func() {
		defer lr.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		files, err := media.close(ctx)
		root.Send(self, &recordingClosed{id: id, files: files, err: err})
	}()
}

// finishRecording writes the recording's end: completed, or failed when
// the writer failed or its disk filled up, with its files and their
// events.
func (a *roomActor) finishRecording(lr *liveRecording, files []*recordpb.RecordingFile, closeErr error) {
	failure := lr.failure
	if failure == nil {
		failure = closeErr
	}
	reason := lr.reason
	st := recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED
	if failure != nil {
		st = recordpb.RecordingStatus_RECORDING_STATUS_FAILED
		if isDiskFull(failure) {
			reason = RecordingDiskFull
		}
	}
	next := endedRecording(proto.Clone(lr.rec).(*recordpb.Recording), st, reason, failure)
	part := recordingPart(next)
	if len(files) == 0 && closeErr != nil {
		// The writer did not say (it is still closing its files): the
		// part's files stay as they were last listed, no longer written.
		for _, f := range next.Files {
			if filePart(f) == part {
				g := proto.Clone(f).(*recordpb.RecordingFile)
				g.Writing = false
				files = append(files, g)
			}
		}
	}
	next.Files = withPartFiles(next.Files, part, files)
	c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}
	for _, f := range files {
		name := "participant-recording-stopped"
		if next.Layout == LayoutTrack {
			name = "participant-track-recording-stopped"
		}
		a.recordingEvent(c, next, name, recordingFileEventData{RecordingID: next.Id, RecordingFileJSON: newRecordingFileJSON(f), Reason: reason})
	}
	if st == recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED {
		a.recordingEvent(c, next, "recording-stopped", NewRecordingJSON(next))
	} else {
		a.recordingEvent(c, next, "recording-failed", NewRecordingJSON(next))
	}
	// Counted before the write: the writer has ended whether or not its
	// record is written, and a reader who sees the record sees the count.
	a.deps.metrics.recordingEnded(next)
	if err := a.commit(c); err != nil {
		// Left stopping in the store: the start-up after a restart closes
		// it, its files finalized again.
		a.log.Error("record a finished recording", "recording", next.Id, "err", err)
	} else {
		a.deps.removeOpenMarker(next.Id)
	}
	lr.wg.Wait() // the closer has sent its report: nothing of it runs on
	a.life.recording = nil
	a.deps.writing.Delete(next.Id)
	close(lr.ended)
	a.log.Info("recording ended", "recording", next.Id, "status", RecordingStatusName(st), "reason", reason, "files", len(files))
}

// writerFailureReason is the end reason of a writer that failed: its disk
// filled up, or another write error.
func writerFailureReason(err error) string {
	if isDiskFull(err) {
		return RecordingDiskFull
	}
	return RecordingWriterFailed
}

// endedRecording sets r's end: status, time, reason and error.
func endedRecording(r *recordpb.Recording, st recordpb.RecordingStatus, reason string, failure error) *recordpb.Recording {
	r.Status, r.EndReason = st, reason
	r.EndedAt = r.UpdatedAt
	if failure != nil {
		r.Error = failure.Error()
	}
	return r
}

// endRecordingNow stops the room's recording and waits for its files,
// for a room whose session ends or whose actor stops: what it wrote is
// closed and recorded before the room moves on.
func (a *roomActor) endRecordingNow(reason string) {
	lr := a.life.recording
	if lr == nil {
		return
	}
	if !lr.stopping {
		a.stopRecording(lr, reason, nil)
	}
	// The closer's report goes to the mailbox, which this message holds:
	// wait for the closer here and finish with what it found.
	lr.wg.Wait()
	files, err := lr.media.closed()
	a.finishRecording(lr, files, err)
}

// deleteRecording removes rec, a recording that has ended as
// DeleteRecording read it: its record, then its files on this node. The
// record goes first: files without a record are removed at a later start,
// a record without files would list what is gone. A record another delete
// removed meanwhile is not found by the store's delete, which then writes
// nothing.
func (a *roomActor) deleteRecording(rec *recordpb.Recording) error {
	if lr := a.life.recording; lr != nil && lr.rec.Id == rec.Id {
		return ErrRecordingActive
	}
	err := a.commit(&changes{w: persistence.Writes{DeleteRecordings: []string{rec.Id}}})
	if errors.Is(err, persistence.ErrNotFound) {
		return ErrRecordingNotFound
	}
	if err != nil {
		return fmt.Errorf("delete recording: %w", err)
	}
	a.deps.removeOwnRecordingFiles(rec)
	return nil
}

// recordingEvent queues a recording's webhook event, under its session.
func (a *roomActor) recordingEvent(c *changes, rec *recordpb.Recording, name string, data any) {
	if a.room == nil {
		return
	}
	a.deps.enqueueEvent(&c.w, a.room, rec.SessionId, name, a.now(), data)
}

// recordTrack adds a published track to the running recording, if it
// records it: the participant is one it records, and the track audio
// unless the recording is audio only. Its participant's (or track's)
// started event is written once.
func (a *roomActor) recordTrack(m *member, t *roomTrack) {
	lr := a.life.recording
	if lr == nil || lr.stopping || t.src == nil {
		return
	}
	if len(lr.rec.Participants) > 0 && !slices.Contains(lr.rec.Participants, m.info.Identity) {
		return
	}
	if lr.rec.AudioOnly && t.info.Kind != "audio" {
		return
	}
	if err := lr.media.attach(m.info, t.info.ID, t.src); err != nil {
		a.log.Warn("track not recorded", "recording", lr.rec.Id, "participant", m.info.ID, "track", t.info.ID, "err", err)
		return
	}
	key, name := string(m.info.ID), "participant-recording-started"
	if lr.rec.Layout == LayoutTrack {
		key, name = string(t.info.ID), "participant-track-recording-started"
	}
	if lr.started[key] {
		return
	}
	lr.started[key] = true
	c := &changes{}
	a.recordingEvent(c, lr.rec, name, recordingMemberEventData{RecordingID: lr.rec.Id, ParticipantID: string(m.info.ID),
		Identity: m.info.Identity, TrackID: string(t.info.ID), Kind: t.info.Kind, Part: recordingPart(lr.rec)})
	if err := a.commit(c); err != nil {
		a.log.Error("queue recording event", "event", name, "err", err)
	}
}

// unrecordTrack ends a track's part of the recording: it was unpublished,
// or its publisher left.
func (a *roomActor) unrecordTrack(trackID TrackID) {
	if lr := a.life.recording; lr != nil && !lr.stopping {
		lr.media.detach(trackID)
	}
}

// recordingMemberEventData is the data of a participant-recording-started
// or participant-track-recording-started event.
type recordingMemberEventData struct {
	RecordingID   string `json:"recording_id"`
	ParticipantID string `json:"participant_id"`
	Identity      string `json:"identity"`
	TrackID       string `json:"track_id,omitempty"`
	Kind          string `json:"kind,omitempty"`
	// Part is the part of the recording the file is in.
	Part uint32 `json:"part"`
}

// recordOnStart starts a recording with a session whose room records on
// start: with its auto_start.recording options, or the defaults for
// record_on_start. A failure is logged: the session goes on.
func (a *roomActor) recordOnStart() {
	var opts RecordingOptions
	switch s := a.room.GetAutoStart().GetRecording(); {
	case s != nil:
		opts = RecordingOptionsOf(s)
	case !a.room.GetConfig().GetRecordOnStart():
		return
	}
	if _, err := a.startRecording(opts); err != nil {
		a.log.Error("record on start", "err", err)
	}
}

// stopReason is why a stopping room actor stops its recording.
func (a *roomActor) stopReason() string {
	if a.life.failed.Load() {
		return RecordingRoomFailed
	}
	return RecordingServerShutdown
}

// RecordingOptionsOf returns the options that settings hold.
func RecordingOptionsOf(s *recordpb.RecordingSettings) RecordingOptions {
	return RecordingOptions{Layout: s.GetLayout(), AudioOnly: s.GetAudioOnly(), Participants: slices.Clone(s.GetParticipants())}
}

// RecordingSettingsOf returns the settings that keep o.
func RecordingSettingsOf(o RecordingOptions) *recordpb.RecordingSettings {
	return &recordpb.RecordingSettings{Layout: o.Layout, AudioOnly: o.AudioOnly, Participants: slices.Clone(o.Participants)}
}

// validateAutoStart checks a room's auto_start: a recording that starts by
// itself needs recording_enabled and valid options, as one started by the
// API does.
func validateAutoStart(r *recordpb.Room) error {
	s := r.GetAutoStart().GetRecording()
	if s == nil {
		return nil
	}
	if !r.GetConfig().GetRecordingEnabled() {
		return invalid("auto_start.recording", "needs config.recording_enabled")
	}
	opts := RecordingOptionsOf(s)
	err := opts.Validate()
	var ve *ValidationError
	var ne *NotProvidedError
	switch {
	case errors.As(err, &ve):
		return invalid("auto_start.recording."+ve.Field, "%s", ve.Reason)
	case errors.As(err, &ne):
		return NotProvided("auto_start.recording."+ne.Field, ne.Reason)
	}
	return err
}

// closeOrphanRecordings settles the recordings of this room that the
// store says are running but that no writer of this room writes: a cluster
// node that ran the room was lost (another node, or this one when it lost
// its lease or restarted: its writer stopped with the room, and its last
// writes were refused), or its actor was stopped without a word. On a
// single node the start-up closed those of a crash already.
//
// In a cluster, a recording that was running when its node lost the room
// goes on here with the session, as its next part (continueRecording).
// Any other is closed: its files on this node are finalized, and the
// record is marked failed (node-lost when a cluster node lost it) with its
// recording-failed event. A failure is logged: the next load tries again.
func (a *roomActor) closeOrphanRecordings(ctx context.Context) {
	if a.life.recording != nil {
		return
	}
	recs, _, err := a.deps.Recordings(ctx, RecordingQuery{RoomID: a.id})
	if err != nil {
		a.log.Error("find the room's open recordings", "err", err)
		return
	}
	cfg := a.deps.cfg.Recording
	for _, rec := range recs {
		if recordingEnded(rec) {
			continue
		}
		if a.continuesHere(rec) {
			a.continueRecording(rec)
			continue
		}
		reason, why := RecordingServerRestart, errors.New("interrupted: its writer stopped with the server")
		switch {
		case rec.NodeId != cfg.NodeID:
			reason, why = RecordingNodeLost, fmt.Errorf("interrupted: node %q, which held it, was lost", rec.NodeId)
		case a.deps.leaseLost.Load():
			// This node's own, left open when the node lost its lease and
			// dropped its rooms (their last writes refused); not one of a
			// restart, whose process never dropped any.
			reason, why = RecordingNodeLost, fmt.Errorf("interrupted: node %q lost the room with its cluster lease", rec.NodeId)
		}
		next := a.deps.interruptedRecording(rec, a.now(), reason, why)
		c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}
		a.recordingEvent(c, next, "recording-failed", NewRecordingJSON(next))
		a.deps.metrics.recordingEnded(next)
		if err := a.commit(c); err != nil {
			a.log.Error("close an interrupted recording", "recording", rec.Id, "err", err)
			continue
		}
		if rec.NodeId == cfg.NodeID {
			a.deps.removeOpenMarker(rec.Id)
		}
		a.log.Info("closed an interrupted recording", "recording", rec.Id, "reason", reason)
	}
}

// continuesHere reports whether rec, left open by a writer this room no
// longer has, goes on here as its next part: this is a cluster node that
// took the room over with its session (the node that wrote the recording
// died, lost its lease, or restarted), and the recording was running.
func (a *roomActor) continuesHere(rec *recordpb.Recording) bool {
	cfg := a.deps.cfg
	return cfg.Owners != nil && cfg.Recording.Dir != "" &&
		rec.Status == recordpb.RecordingStatus_RECORDING_STATUS_RECORDING &&
		a.session != nil && a.session.rec.Id == rec.SessionId &&
		a.room.GetConfig().GetRecordingEnabled()
}

// continueRecording goes on with rec, whose writer was lost with the node
// that ran the room, as its next part, written here: the same recording,
// status recording, its files of the parts before listed with the node
// that holds each (this node's finalized), new files named by the part
// (recorder.Config.Part) on the recording's clock. A recording-started
// event with the part number says so. A writer that cannot start fails the
// recording, as at its start.
func (a *roomActor) continueRecording(rec *recordpb.Recording) {
	cfg := a.deps.cfg.Recording
	next := proto.Clone(rec).(*recordpb.Recording)
	next.Files, _ = a.deps.settleFiles(rec)
	next.Part, next.NodeId, next.UpdatedAt = recordingPart(rec)+1, cfg.NodeID, timestamp(a.now())
	media, err := a.startMedia(next)
	if err != nil {
		a.log.Error("recording writer did not start for the next part", "recording", rec.Id, "part", next.Part, "err", err)
		failed := endedRecording(next, recordpb.RecordingStatus_RECORDING_STATUS_FAILED, writerFailureReason(err), err)
		c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{failed}}}
		a.recordingEvent(c, failed, "recording-failed", NewRecordingJSON(failed))
		a.deps.metrics.recordingEnded(failed)
		if err := a.commit(c); err != nil {
			a.log.Error("record a failed recording", "recording", rec.Id, "err", err)
		}
		return
	}
	data := NewRecordingJSON(next)
	if rec.NodeId != cfg.NodeID {
		// The node that wrote the part before was lost with it.
		for i := range data.Files {
			data.Files[i].Available = data.Files[i].NodeID != rec.NodeId
		}
	}
	c := &changes{w: persistence.Writes{Recordings: []*recordpb.Recording{next}}}
	a.recordingEvent(c, next, "recording-started", data)
	if err := a.commit(c); err != nil {
		// Still open in the store: the room's next load tries again.
		a.closeMediaNow(media)
		a.log.Error("continue a recording", "recording", rec.Id, "part", next.Part, "err", err)
		return
	}
	a.runRecording(next, media)
	a.deps.metrics.recordingParts.Inc()
	a.log.Info("recording continued", "recording", rec.Id, "part", next.Part, "after", rec.NodeId)
}
