package actors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
)

// RecordingID names a recording ("rec_...").
type RecordingID string

// NewRecordingID returns a fresh recording id.
func NewRecordingID() RecordingID { return RecordingID("rec_" + randomID()) }

// RecordingConfig configures recording. Its zero value records nothing:
// starting a recording gets ErrRecordingUnavailable.
type RecordingConfig struct {
	// Dir holds one directory per recording, named by its id, with its
	// files. Empty: this server does not record.
	Dir string
	// MaxDuration stops a recording that has run this long (end reason
	// max-duration). Zero means no limit.
	MaxDuration time.Duration
	// MinFreeBytes is the free disk below which a recording stops as
	// failed (end reason disk_full), so that what it wrote stays playable.
	// Zero means the writer's default.
	MinFreeBytes uint64
	// FreeSpace measures the free bytes of a recording's file system
	// against MinFreeBytes; nil is the operating system's figure.
	FreeSpace func(dir string) (uint64, error)
	// NodeID names this node in the records it writes, as the node that
	// holds their files. Empty on a single node.
	NodeID string
}

// The layouts a recording may have: a file per participant (its audio and
// video together), or a file per track.
const (
	LayoutParticipant = "participant"
	LayoutTrack       = "track"
)

// compositeLayouts are the layouts of a mixed recording (one picture made
// of several participants), which needs decoding: Troupe does not provide
// them, and says so rather than calling them invalid.
var compositeLayouts = []string{"grid", "speaker", "spotlight", "sidebar", "composite", "gallery", "custom"}

// Limits of a start request's participant list.
const (
	maxRecordedParticipants = 100
	maxIdentityLen          = 200
)

// Reasons a recording ends, in the API's words.
const (
	RecordingStoppedViaAPI  = "stopped-via-api"
	RecordingSessionEnded   = "session-ended"
	RecordingMaxDuration    = "max-duration"
	RecordingDiskFull       = "disk_full"
	RecordingServerRestart  = "server-restart"
	RecordingServerShutdown = "server-shutdown"
	RecordingRoomFailed     = "room-failed"
	RecordingNodeLost       = "node-lost"
	RecordingWriterFailed   = "writer-failed"
)

// RecordingOptions are what a start request may choose. The zero value
// records every participant's audio and video, a file per participant.
type RecordingOptions struct {
	// Layout is LayoutParticipant (the default when empty) or LayoutTrack.
	Layout string
	// AudioOnly records the audio tracks alone.
	AudioOnly bool
	// Participants are the identities to record; empty means everyone.
	Participants []string
}

// Validate checks o and fills in its default layout. A composite layout
// gets ErrNotProvided; anything else wrong a *ValidationError.
func (o *RecordingOptions) Validate() error {
	switch {
	case o.Layout == "":
		o.Layout = LayoutParticipant
	case o.Layout == LayoutParticipant || o.Layout == LayoutTrack:
	case slices.Contains(compositeLayouts, strings.ToLower(o.Layout)):
		return NotProvided("layout", fmt.Sprintf("a %q recording mixes participants into one picture, which needs decoding; "+
			"Troupe records each participant (or track) as it is received", o.Layout))
	default:
		return invalid("layout", "must be %q or %q", LayoutParticipant, LayoutTrack)
	}
	if len(o.Participants) > maxRecordedParticipants {
		return invalid("participants", "at most %d", maxRecordedParticipants)
	}
	seen := make(map[string]bool, len(o.Participants))
	for _, id := range o.Participants {
		switch {
		case id == "" || len(id) > maxIdentityLen:
			return invalid("participants", "each identity must be 1 to %d bytes", maxIdentityLen)
		case seen[id]:
			return invalid("participants", "identity %q given twice", id)
		}
		seen[id] = true
	}
	return nil
}

// NotProvidedError is a request for something Troupe does not do (it
// needs decoding media): ErrNotProvided, with the field that asked and why.
type NotProvidedError struct {
	Field, Reason string
}

func (e *NotProvidedError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrNotProvided) hold.
func (e *NotProvidedError) Is(target error) bool { return target == ErrNotProvided }

// NotProvided returns the *NotProvidedError of field.
func NotProvided(field, reason string) error { return &NotProvidedError{Field: field, Reason: reason} }

// RecordingQuery selects recordings for Recordings.
type RecordingQuery struct {
	RoomID    RoomID
	SessionID SessionID
	// Status filters; RECORDING_STATUS_UNSPECIFIED lists every recording.
	Status        recordpb.RecordingStatus
	Limit, Offset int
}

// Recordings returns a page of recordings, newest first, and how many
// match. Every change of a recording is written before it is acknowledged
// or announced, so the store is current.
func (r *Rooms) Recordings(ctx context.Context, q RecordingQuery) ([]*recordpb.Recording, int, error) {
	page, err := r.cfg.Store.ListRecordings(ctx, persistence.RecordingQuery{
		RoomID: string(q.RoomID), SessionID: string(q.SessionID), Status: q.Status, Limit: q.Limit, Offset: q.Offset,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list recordings: %w", err)
	}
	return page.Recordings, page.Total, nil
}

// Recording returns one recording.
func (r *Rooms) Recording(ctx context.Context, id RecordingID) (*recordpb.Recording, error) {
	rec, err := r.cfg.Store.GetRecording(ctx, string(id))
	if errors.Is(err, persistence.ErrNotFound) {
		return nil, ErrRecordingNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get recording: %w", err)
	}
	return rec, nil
}

// RecordingFile is a file of a recording, found for a download.
type RecordingFile struct {
	Recording *recordpb.Recording
	File      *recordpb.RecordingFile
	// Path is where the file is on this node's disk.
	Path string
	// Writing: this node's writer has the file open; Open serves what of
	// it plays so far.
	Writing bool
}

// Open opens the file for its download and returns how many of its bytes
// to serve: all of a finished file; of one being written, its playable
// prefix (recorder.PlayablePrefix), which grows as the writer goes on.
func (f *RecordingFile) Open() (*os.File, int64, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		// Listed, but gone from the disk (removed by hand).
		return nil, 0, fmt.Errorf("%w: %s is missing", ErrRecordingFileNotFound, f.Path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open recording file: %w", err)
	}
	var n int64
	if f.Writing {
		n, err = recorder.PlayablePrefix(file)
	} else {
		var info os.FileInfo
		if info, err = file.Stat(); err == nil {
			n = info.Size()
		}
	}
	if err != nil {
		file.Close()
		return nil, 0, fmt.Errorf("open recording file: %w", err)
	}
	return file, n, nil
}

// RecordingFile finds the file name of recording id. A name that is not
// one of the recording's files (a path, "..", a name it never wrote) gets
// ErrRecordingFileNotFound. A file on another node of the cluster (a
// recording owned there, or a part written there before a failover) gets
// a *NotOwnerError naming that node, as a room owned there does, so that
// the HTTP edge forwards the download to it; one recorded on a single node
// that is now a cluster's a *RecordingElsewhereError. A file this node is
// writing is found as its writer lists it (Writing).
func (r *Rooms) RecordingFile(ctx context.Context, id RecordingID, name string) (*RecordingFile, error) {
	if err := ValidateFileName(name); err != nil {
		return nil, err
	}
	rec, err := r.Recording(ctx, id)
	if err != nil {
		return nil, err
	}
	var file *recordpb.RecordingFile
	if i := slices.IndexFunc(rec.Files, func(f *recordpb.RecordingFile) bool { return f.Name == name }); i >= 0 {
		file = rec.Files[i]
	}
	writing := false
	if v, ok := r.writing.Load(rec.Id); ok && (file == nil || fileNode(rec, file) == r.cfg.Recording.NodeID) {
		m := v.(*recordingMedia)
		files, err := m.w.Files(ctx)
		if err != nil {
			return nil, fmt.Errorf("recording files: %w", err)
		}
		if i := slices.IndexFunc(files, func(f recorder.File) bool { return f.Name == name }); i >= 0 {
			file, writing = fileRecord(files[i], m.part, m.node), files[i].Writing
		}
	}
	if file == nil {
		return nil, ErrRecordingFileNotFound
	}
	switch node := fileNode(rec, file); {
	case node == r.cfg.Recording.NodeID:
	case node != "":
		return nil, &NotOwnerError{RoomID: RoomID(rec.RoomId), Owner: node}
	default:
		return nil, &RecordingElsewhereError{Node: node}
	}
	if r.cfg.Recording.Dir == "" {
		return nil, ErrRecordingUnavailable
	}
	return &RecordingFile{Recording: rec, File: file, Path: filepath.Join(r.cfg.Recording.Dir, rec.Id, name), Writing: writing}, nil
}

// ValidateFileName refuses, with ErrRecordingFileNotFound, a name that
// could reach outside a recording's directory: empty, "." or "..", or
// holding a separator or a NUL. The files a recording writes never do.
func ValidateFileName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.Contains(name, "..") {
		return fmt.Errorf("%w: bad file name %q", ErrRecordingFileNotFound, name)
	}
	return nil
}

// RecordingElsewhereError: the files of a recording are on another node
// of the cluster, which serves their downloads.
type RecordingElsewhereError struct{ Node string }

func (e *RecordingElsewhereError) Error() string {
	return fmt.Sprintf("the recording's files are on node %q", e.Node)
}

// RecordingStatusName is the API's name of a recording status.
func RecordingStatusName(s recordpb.RecordingStatus) string {
	switch s {
	case recordpb.RecordingStatus_RECORDING_STATUS_STARTING:
		return "starting"
	case recordpb.RecordingStatus_RECORDING_STATUS_RECORDING:
		return "recording"
	case recordpb.RecordingStatus_RECORDING_STATUS_STOPPING:
		return "stopping"
	case recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED:
		return "completed"
	case recordpb.RecordingStatus_RECORDING_STATUS_FAILED:
		return "failed"
	default:
		return ""
	}
}

// ParseRecordingStatus is the inverse of RecordingStatusName; ok is false
// for a name that is none of them.
func ParseRecordingStatus(name string) (recordpb.RecordingStatus, bool) {
	for st := recordpb.RecordingStatus_RECORDING_STATUS_STARTING; st <= recordpb.RecordingStatus_RECORDING_STATUS_FAILED; st++ {
		if RecordingStatusName(st) == name {
			return st, true
		}
	}
	return 0, false
}

// recordingEnded reports whether a recording's status is final.
func recordingEnded(r *recordpb.Recording) bool {
	return r.Status == recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || r.Status == recordpb.RecordingStatus_RECORDING_STATUS_FAILED
}

// StartRecording starts a recording of room id's running session.
func (r *Rooms) StartRecording(ctx context.Context, id RoomID, opts RecordingOptions) (*recordpb.Recording, error) {
	if err := ValidateRoomID(id); err != nil {
		return nil, ErrRoomNotFound
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return r.recordingRequest(ctx, id, &startRecordingReq{opts: opts})
}

// StopRecording stops a running recording, or one stopping already, and
// returns it as it ended: completed (or failed) once its writer has closed
// its files, with their final sizes and durations, as reading it after
// shows. A writer that takes longer than the request timeout (or ctx) to
// close them leaves it stopping, as it is returned then; it ends all the
// same. A recording that has ended gets ErrRecordingNotActive.
func (r *Rooms) StopRecording(ctx context.Context, id RecordingID) (*recordpb.Recording, error) {
	rec, err := r.Recording(ctx, id)
	if err != nil {
		return nil, err
	}
	if recordingEnded(rec) {
		return nil, ErrRecordingNotActive
	}
	reply, err := requestAs[*recordingReply](ctx, r, RoomID(rec.RoomId), &stopRecordingReq{id: id})
	if err != nil {
		return nil, err
	}
	if reply.err != nil {
		return nil, reply.err
	}
	wait, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	select {
	case <-reply.ended:
	case <-wait.Done():
		return reply.rec, nil
	}
	ended, err := r.Recording(ctx, id)
	if err != nil {
		return nil, err
	}
	if !recordingEnded(ended) {
		// Its end could not be written (logged): the store holds it as
		// it was, and the next start closes it.
		return reply.rec, nil
	}
	return ended, nil
}

// DeleteRecording removes a recording that has ended, and its files on
// this node, and returns the record it removed (whose files on other nodes
// the caller has removed). One still running gets ErrRecordingActive. The
// record is read here once, for its room and its status, and handed to
// the room actor: an ended recording's record changes no more, and the
// store's delete fails with ErrNotFound if another delete took it first.
func (r *Rooms) DeleteRecording(ctx context.Context, id RecordingID) (*recordpb.Recording, error) {
	rec, err := r.Recording(ctx, id)
	if err != nil {
		return nil, err
	}
	if !recordingEnded(rec) {
		return nil, ErrRecordingActive
	}
	if _, err := r.recordingRequest(ctx, RoomID(rec.RoomId), &deleteRecordingReq{rec: rec}); err != nil {
		return nil, err
	}
	return rec, nil
}

// recordingRequest asks the room actor of id, which owns the room's
// recordings, and returns its answer.
func (r *Rooms) recordingRequest(ctx context.Context, id RoomID, msg any) (*recordpb.Recording, error) {
	reply, err := requestAs[*recordingReply](ctx, r, id, msg)
	if err != nil {
		return nil, err
	}
	return reply.rec, reply.err
}

// closeInterruptedRecordings closes the recordings a crash or a kill left
// open on this node: each file the writer left in the recording's
// directory is finalized (recorder.Finalize makes it what a close would
// have), and the record is marked failed with reason server-restart,
// listing those files, with its recording-failed event. The directories
// of recordings deleted meanwhile are removed first.
func (r *Rooms) closeInterruptedRecordings(ctx context.Context) error {
	r.removeDeletedRecordings(ctx)
	open, err := r.cfg.Store.OpenRecordings(ctx)
	if err != nil {
		return fmt.Errorf("actors: find interrupted recordings: %w", err)
	}
	for _, rec := range open {
		if rec.NodeId != r.cfg.Recording.NodeID {
			continue
		}
		next := r.interruptedRecording(rec, r.cfg.Clock.Now(), RecordingServerRestart,
			errors.New("interrupted by a server restart; its files were finalized"))
		w := persistence.Writes{Recordings: []*recordpb.Recording{next}}
		room, err := r.cfg.Store.GetRoom(ctx, rec.RoomId)
		switch {
		case err == nil:
			r.enqueueEvent(&w, room, rec.SessionId, "recording-failed", next.UpdatedAt.AsTime(), NewRecordingJSON(next))
		case !isNotFound(err):
			return fmt.Errorf("actors: room of recording %s: %w", rec.Id, err)
		}
		if err := r.cfg.Store.Apply(ctx, w); err != nil {
			return fmt.Errorf("actors: close recording %s: %w", rec.Id, err)
		}
		r.metrics.recordingEnded(next)
		r.removeOpenMarker(rec.Id)
		r.cfg.Logger.Info("closed a recording interrupted by a restart", "recording", rec.Id, "room", rec.RoomId, "files", len(next.Files))
	}
	return nil
}

// interruptedRecording returns rec, which a writer that is gone left
// open, failed for reason at now: its files settled (settleFiles), and
// ended when its media did, as far as this node knows it: the last frame
// its files here hold, or its last recorded change if that is later (the
// store's figures lag the files by up to a relisting).
func (r *Rooms) interruptedRecording(rec *recordpb.Recording, now time.Time, reason string, why error) *recordpb.Recording {
	next := proto.Clone(rec).(*recordpb.Recording)
	var mediaEnd time.Time
	next.Files, mediaEnd = r.settleFiles(rec)
	next.UpdatedAt = timestamp(now)
	endedRecording(next, recordpb.RecordingStatus_RECORDING_STATUS_FAILED, reason, why)
	next.EndedAt = rec.UpdatedAt
	if mediaEnd.After(now) { // a wall clock stepped back since
		mediaEnd = now
	}
	if mediaEnd.After(rec.UpdatedAt.AsTime()) {
		next.EndedAt = timestamp(mediaEnd)
	}
	return next
}

// finalizeFiles finalizes the media files in dir and describes them as far
// as the files tell: name, container, size and duration (who and what they
// hold was known to the writer only). It returns the wall time of the
// last frame they hold (zero: none known).
func (r *Rooms) finalizeFiles(dir string) ([]*recordpb.RecordingFile, time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.cfg.Logger.Warn("read an interrupted recording's directory", "dir", dir, "err", err)
		}
		return nil, time.Time{}
	}
	var (
		files []*recordpb.RecordingFile
		last  time.Time
	)
	for _, e := range entries {
		ext := strings.TrimPrefix(filepath.Ext(e.Name()), ".")
		if !e.Type().IsRegular() || (ext != "webm" && ext != "mkv") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		held, err := recorder.Finalize(path)
		if err != nil {
			r.cfg.Logger.Warn("finalize an interrupted recording's file", "file", path, "err", err)
			continue
		}
		if end := held.End(); end.After(last) {
			last = end
		}
		files = append(files, &recordpb.RecordingFile{Name: e.Name(), Container: ext,
			Size: uint64(held.Size), DurationMs: uint64(held.Duration.Milliseconds())}) //nolint:gosec // not negative
	}
	return files, last
}

// settleFiles returns rec's files as they are once no writer writes them
// (the one that did stopped with its node or its room): each with its
// part and node, none writing, and those on this node finalized, with the
// size and duration they have on the disk. A file on the disk that the
// record missed (its listing was not written) is added, as of the last
// part this node wrote. It returns the wall time of the last frame the
// files on this node hold (zero: none known).
func (r *Rooms) settleFiles(rec *recordpb.Recording) ([]*recordpb.RecordingFile, time.Time) {
	self := r.cfg.Recording.NodeID
	files := make([]*recordpb.RecordingFile, len(rec.Files))
	for i, f := range rec.Files {
		g := proto.Clone(f).(*recordpb.RecordingFile)
		g.Part, g.NodeId, g.Writing = filePart(f), fileNode(rec, f), false
		files[i] = g
	}
	ownPart := lastPartOf(rec, self)
	if r.cfg.Recording.Dir == "" {
		return files, time.Time{}
	}
	found, last := r.finalizeFiles(filepath.Join(r.cfg.Recording.Dir, rec.Id))
	for _, d := range found {
		i := slices.IndexFunc(files, func(f *recordpb.RecordingFile) bool { return f.Name == d.Name })
		switch {
		case i < 0:
			d.Part, d.NodeId = max(ownPart, 1), self
			files = append(files, d)
		case files[i].NodeId == self:
			files[i].Size, files[i].Container, files[i].DurationMs = d.Size, d.Container, d.DurationMs
		}
	}
	return files, last
}

// lastPartOf is the last part of rec that node wrote, as far as the
// record tells (zero: it tells none).
func lastPartOf(rec *recordpb.Recording, node string) uint32 {
	part := uint32(0)
	if rec.NodeId == node {
		part = recordingPart(rec)
	}
	for _, f := range rec.Files {
		if fileNode(rec, f) == node {
			part = max(part, filePart(f))
		}
	}
	return part
}

// removeOpenMarker says that no writer of this node has recording id's
// files open any more.
func (r *Rooms) removeOpenMarker(id string) {
	if r.cfg.Recording.Dir == "" {
		return
	}
	if err := os.Remove(filepath.Join(r.cfg.Recording.Dir, id, openMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.cfg.Logger.Warn("recording directory", "recording", id, "err", err)
	}
}

// settleLostParts finalizes, at a cluster node's start-up, the files of
// the recording parts its process was writing when it died, or when it
// lost its lease: a directory whose openMarker is left. Their recordings
// went on (or ended) on the node that took their rooms over, which owns
// their records and lists this node's files as last recorded; this node
// makes its files whole, to be downloaded from it again, and writes their
// sizes and durations into the record (settleLostPartRecord). Recordings
// that no node took over yet are closed, or continued, by whichever takes
// the room (closeOrphanRecordings), with these figures. The directories of
// recordings deleted while this node was down go first. A record that
// could not be written keeps the mark, for the next start to try again.
func (r *Rooms) settleLostParts() {
	dir := r.cfg.Recording.Dir
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startupStoreTimeout)
	defer cancel()
	r.removeDeletedRecordings(ctx)
	for _, e := range r.recordingDirEntries() {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), openMarker)); err != nil {
			continue
		}
		files, _ := r.finalizeFiles(filepath.Join(dir, e.Name()))
		if err := r.settleLostPartRecord(ctx, e.Name(), files); err != nil {
			r.cfg.Logger.Warn("write the figures of an interrupted recording part's files; tried again at the next start",
				"recording", e.Name(), "err", err)
			continue
		}
		r.removeOpenMarker(e.Name())
		r.cfg.Logger.Info("finalized the files of an interrupted recording part", "recording", e.Name(), "files", len(files))
	}
}

// recordingFileSettler is the part of a cluster's store through which a
// node writes the figures of files it finalized into a recording's
// record, which the room's owner, another node perhaps, holds: a
// conditional update of those files' entries alone, which the owner's own
// writes keep (etcdstore.Store.SettleRecordingFiles).
type recordingFileSettler interface {
	SettleRecordingFiles(ctx context.Context, id string, files []*recordpb.RecordingFile, at time.Time) (*recordpb.Recording, error)
}

// settleLostPartRecord writes found, the files of recording id this node
// finalized, into its record: each with the part the record lists it in,
// or, one the record missed (its listing was not written), the last part
// this node wrote. A record that is gone (deleted) needs nothing.
func (r *Rooms) settleLostPartRecord(ctx context.Context, id string, found []*recordpb.RecordingFile) error {
	settler, ok := r.cfg.Store.(recordingFileSettler)
	if !ok || len(found) == 0 {
		return nil
	}
	rec, err := r.cfg.Store.GetRecording(ctx, id)
	if errors.Is(err, persistence.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get recording: %w", err)
	}
	self := r.cfg.Recording.NodeID
	last := lastPartOf(rec, self)
	files := make([]*recordpb.RecordingFile, 0, len(found))
	for _, f := range found {
		f.NodeId, f.Part = self, last
		if i := slices.IndexFunc(rec.Files, func(g *recordpb.RecordingFile) bool {
			return g.Name == f.Name && fileNode(rec, g) == self
		}); i >= 0 {
			f.Part = filePart(rec.Files[i])
		}
		if f.Part == 0 {
			r.cfg.Logger.Warn("a recording file its record does not place in a part of this node's is left out of it",
				"recording", id, "file", f.Name)
			continue
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil
	}
	if _, err := settler.SettleRecordingFiles(ctx, id, files, r.cfg.Clock.Now()); err != nil && !errors.Is(err, persistence.ErrNotFound) {
		return fmt.Errorf("settle recording files: %w", err)
	}
	return nil
}

// startupStoreTimeout bounds what the start-up asks the store about the
// recordings directory.
const startupStoreTimeout = 30 * time.Second

// removeDeletedRecordings removes, at start-up, the directories of
// recordings whose record is gone: deleted while this node was down (the
// node that deleted it could not ask this one to remove its part's
// files), or while a removal failed, or a start whose record was never
// written. Each directory goes by removeDeletedRecordingDir's rule (its
// record checked in the store of record itself; one the store does not
// answer for is kept); anything that is not a recording's directory is
// kept too.
func (r *Rooms) removeDeletedRecordings(ctx context.Context) {
	for _, e := range r.recordingDirEntries() {
		if !e.IsDir() || !isRecordingDirName(e.Name()) {
			continue
		}
		if err := r.removeDeletedRecordingDir(ctx, e.Name()); err != nil && !errors.Is(err, ErrRecordingNotDeleted) {
			r.cfg.Logger.Warn("remove the directory of a deleted recording; it is tried again at the next start", "recording", e.Name(), "err", err)
		}
	}
}

// recordingDirEntries lists the recordings directory; nothing, logged, if
// it cannot be read (none yet is no error).
func (r *Rooms) recordingDirEntries() []os.DirEntry {
	dir := r.cfg.Recording.Dir
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		r.cfg.Logger.Warn("read the recordings directory", "dir", dir, "err", err)
	}
	return entries
}
