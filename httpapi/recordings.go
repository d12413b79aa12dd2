package httpapi

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The recordings routes: start and stop, list, read, download a file,
// delete. The room actor owns each recording; these only read the request,
// ask, and render the record (actors.RecordingJSON, the same fields the
// recording events carry).

type recordingListJSON struct {
	Recordings []actors.RecordingJSON `json:"recordings"`
	Total      int                    `json:"total"`
	Limit      int                    `json:"limit"`
	Offset     int                    `json:"offset"`
}

// notProvidedFields are start options of other products that need
// decoding (live streaming, transcription, summaries): refused as not
// provided rather than as unknown, so that a client learns why.
var notProvidedFields = map[string]string{
	"hls":           "HLS needs the media decoded and encoded again; Troupe records what it receives as it is",
	"transcription": "transcription needs the audio decoded; Troupe records what it receives as it is",
	"summary":       "summaries need the audio decoded; Troupe records what it receives as it is",
}

// refuseNotProvided refuses the first of notProvidedFields that o has.
func refuseNotProvided(o *jsonObject) error {
	for _, name := range slices.Sorted(maps.Keys(notProvidedFields)) {
		if _, present, _ := o.take(name); present {
			return actors.NotProvided(o.fieldPath(name), notProvidedFields[name])
		}
	}
	return nil
}

// decodeRecordingOptions reads the options of a recording: layout,
// audio_only, participants. Every field may be absent (but not null).
func decodeRecordingOptions(o *jsonObject) (actors.RecordingOptions, error) {
	var opts actors.RecordingOptions
	if err := refuseNotProvided(o); err != nil {
		return opts, err
	}
	layout, err := nonNull[string](o, "layout", whatString)
	if err != nil {
		return opts, err
	}
	audioOnly, err := nonNull[bool](o, "audio_only", whatBool)
	if err != nil {
		return opts, err
	}
	participants, err := nonNull[[]string](o, "participants", whatStrings)
	if err != nil {
		return opts, err
	}
	if layout != nil {
		opts.Layout = *layout
	}
	if audioOnly != nil {
		opts.AudioOnly = *audioOnly
	}
	if participants != nil {
		opts.Participants = *participants
	}
	if err := o.finish(); err != nil {
		return opts, err
	}
	if err := opts.Validate(); err != nil {
		return opts, prefixField(err, o)
	}
	return opts, nil
}

// prefixField places a field error of an options object under the
// object's own path (auto_start.recording.layout).
func prefixField(err error, o *jsonObject) error {
	if o.path == "" {
		return err
	}
	if ve, ok := err.(*actors.ValidationError); ok {
		return &actors.ValidationError{Field: o.fieldPath(ve.Field), Reason: ve.Reason}
	}
	if ne, ok := err.(*actors.NotProvidedError); ok {
		return &actors.NotProvidedError{Field: o.fieldPath(ne.Field), Reason: ne.Reason}
	}
	return err
}

// startRecording starts a recording of the room's running session: 201
// with the recording, recording (or failed, if its writer could not start).
func (s *Server) startRecording(c *gin.Context) error {
	id := actors.RoomID(c.Param("id"))
	if actors.ValidateRoomID(id) != nil {
		return actors.ErrRoomNotFound
	}
	o, err := optionalJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	opts, err := decodeRecordingOptions(o)
	if err != nil {
		return err
	}
	rec, err := s.cfg.Rooms.StartRecording(c.Request.Context(), id, opts)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusCreated, actors.NewRecordingJSON(rec))
	return nil
}

// stopRecording stops a running recording: 200 with it as it ended, once
// its files are closed (as getRecording answers it after), or stopping if
// its writer takes longer than the request timeout to close them.
func (s *Server) stopRecording(c *gin.Context) error {
	o, err := optionalJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	rec, err := s.cfg.Rooms.StopRecording(c.Request.Context(), actors.RecordingID(c.Param("id")))
	if err != nil {
		return err
	}
	out := actors.NewRecordingJSON(rec)
	s.nodeReach(c.Request.Context()).mark(&out)
	writeJSON(c, http.StatusOK, out)
	return nil
}

func (s *Server) listRecordings(c *gin.Context) error {
	query := c.Request.URL.Query()
	var q actors.RecordingQuery
	if query.Has("room_id") {
		q.RoomID = actors.RoomID(query.Get("room_id"))
		if actors.ValidateRoomID(q.RoomID) != nil {
			return fieldError("room_id", "must be a room id: 1 to 64 characters of A-Z, a-z, 0-9, _ and -")
		}
	}
	if query.Has("session_id") {
		if q.SessionID = actors.SessionID(query.Get("session_id")); q.SessionID == "" {
			return fieldError("session_id", "must be a session id")
		}
	}
	out, err := s.recordingPage(c, q)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}

// listRoomRecordings lists a room's recordings, also after the room was
// deleted. A room that does not exist and never had a session is not found.
func (s *Server) listRoomRecordings(c *gin.Context) error {
	return s.listOfRoom(c, func(id actors.RoomID) (any, int, error) {
		out, err := s.recordingPage(c, actors.RecordingQuery{RoomID: id})
		return out, out.Total, err
	})
}

// recordingPage reads limit, offset and status and lists the recordings q
// selects, newest first.
func (s *Server) recordingPage(c *gin.Context, q actors.RecordingQuery) (recordingListJSON, error) {
	query := c.Request.URL.Query()
	var err error
	if q.Limit, q.Offset, err = pageParams(query); err != nil {
		return recordingListJSON{}, err
	}
	if query.Has("status") {
		st, ok := actors.ParseRecordingStatus(query.Get("status"))
		if !ok {
			return recordingListJSON{}, fieldError("status", "must be starting, recording, stopping, completed or failed")
		}
		q.Status = st
	}
	list, total, err := s.cfg.Rooms.Recordings(c.Request.Context(), q)
	if err != nil {
		return recordingListJSON{}, err
	}
	out := recordingListJSON{Recordings: make([]actors.RecordingJSON, len(list)), Total: total, Limit: q.Limit, Offset: q.Offset}
	reach := s.nodeReach(c.Request.Context())
	for i, r := range list {
		out.Recordings[i] = actors.NewRecordingJSON(r)
		reach.mark(&out.Recordings[i])
	}
	return out, nil
}

// nodeReach tells, for one answer, which nodes of the cluster can be
// reached now, so that a file held by a node that is down is listed as
// unavailable. Each node is looked up once (from the node records this
// node follows).
type nodeReach struct {
	s     *Server
	ctx   context.Context
	known map[string]bool
}

func (s *Server) nodeReach(ctx context.Context) *nodeReach {
	return &nodeReach{s: s, ctx: ctx, known: map[string]bool{}}
}

// mark sets each file's available: false when its node is another node
// of the cluster that holds no lease now.
func (n *nodeReach) mark(j *actors.RecordingJSON) {
	for i := range j.Files {
		j.Files[i].Available = n.reachable(j.Files[i].NodeID)
	}
}

func (n *nodeReach) reachable(node string) bool {
	if node == "" || node == n.s.cfg.NodeID || n.s.cfg.Owners == nil {
		return true
	}
	ok, seen := n.known[node]
	if !seen {
		ctx, cancel := context.WithTimeout(n.ctx, ownerLookupTimeout)
		_, err := n.s.cfg.Owners.OwnerURL(ctx, node)
		cancel()
		ok = err == nil
		n.known[node] = ok
	}
	return ok
}

// getRecording answers a recording, with the files being written while it
// runs.
func (s *Server) getRecording(c *gin.Context) error {
	rec, err := s.cfg.Rooms.CurrentRecording(c.Request.Context(), actors.RecordingID(c.Param("id")))
	if err != nil {
		return err
	}
	out := actors.NewRecordingJSON(rec)
	s.nodeReach(c.Request.Context()).mark(&out)
	writeJSON(c, http.StatusOK, out)
	return nil
}

// deleteRecording removes a recording that has ended, and its files: 204
// once its record is gone. The room's owner answers it (forwarded there
// like any request of the room): it deletes the record and its own files,
// then asks each other node of the cluster that holds files of it to
// remove them (removeFilesElsewhere). A node that is down removes them at
// its next start, when it finds a directory whose recording is gone.
func (s *Server) deleteRecording(c *gin.Context) error {
	// The record deleted, as the store held it, names the nodes its files
	// are on.
	rec, err := s.cfg.Rooms.DeleteRecording(c.Request.Context(), actors.RecordingID(c.Param("id")))
	if err != nil {
		return err
	}
	s.removeFilesElsewhere(c, rec)
	c.Status(http.StatusNoContent)
	return nil
}

// removeFilesElsewhere asks each other node that holds files of rec, a
// recording this node just deleted, to remove them (removeRecordingFiles
// on that node), with the credentials of the DELETE, as a download is
// forwarded. A node that cannot be found or reached, or that fails, is
// logged and left: it removes the files at its next start.
func (s *Server) removeFilesElsewhere(c *gin.Context, rec *recordpb.Recording) {
	if s.cfg.Owners == nil {
		return
	}
	for _, node := range actors.FileNodes(rec) {
		if node == s.cfg.NodeID {
			continue
		}
		if err := s.removeFilesOn(c, rec.Id, node); err != nil {
			s.log.Warn("remove a deleted recording's files on another node; it removes them at its next start",
				"recording", rec.Id, "node", node, "err", err)
		}
	}
}

// removeFilesOn asks node to remove its files of recording id, for the
// DELETE c. The lookup and the request are bounded together: a node that
// does not answer is treated as down.
func (s *Server) removeFilesOn(c *gin.Context, id, node string) error {
	ctx, cancel := context.WithTimeout(c.Request.Context(), ownerLookupTimeout+defaultForwardTimeout)
	defer cancel()
	base, err := s.cfg.Owners.OwnerURL(ctx, node)
	if err != nil {
		return fmt.Errorf("find the node: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("the node's URL: %w", err)
	}
	u = u.JoinPath("api", "v1", "recordings", id, "files")
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.String(), nil)
	if err != nil {
		return fmt.Errorf("the request to the node: %w", err)
	}
	req.Header.Set("Authorization", c.GetHeader("Authorization"))
	signForward(req.Header, s.forwardKey, s.forwardedBy(), req.Method, req.URL.Path, s.cfg.Clock.Now())
	resp, err := s.forwarder.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("ask the node: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the node answered %s", resp.Status)
	}
	return nil
}

// removeRecordingFiles removes this node's files of a recording that
// another node deleted (removeFilesElsewhere): 204. A recording whose
// record exists is refused (409 recording_not_deleted) and keeps its
// files, so that nothing but a deletion removes them.
func (s *Server) removeRecordingFiles(c *gin.Context) error {
	if err := s.cfg.Rooms.RemoveDeletedRecordingFiles(c.Request.Context(), actors.RecordingID(c.Param("id"))); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// downloadRecordingFile serves one file of a recording, with Range
// requests, conditional requests and its media type (http.ServeContent).
// A file still being written is served as far as it plays (its whole
// elements), with no validators and no caching: it grows. A file on
// another node is forwarded there; one whose node cannot be reached (it
// died with the part it wrote) is unavailable until that node is back.
func (s *Server) downloadRecordingFile(c *gin.Context) error {
	f, err := s.cfg.Rooms.RecordingFile(c.Request.Context(), actors.RecordingID(c.Param("id")), c.Param("name"))
	if noe, ok := s.forwardable(err, c.Request.Header); ok {
		if s.forwardOr(c, err, true) {
			return nil
		}
		return &fileUnavailableError{node: noe.Owner}
	}
	if err != nil {
		return err
	}
	file, size, err := f.Open()
	if err != nil {
		return err
	}
	defer file.Close()
	modTime := time.Time{}
	if f.Writing {
		c.Header("Cache-Control", "no-store")
	} else if info, err := file.Stat(); err == nil {
		modTime = info.ModTime()
	}
	c.Header("Content-Type", recordingContentType(f.File))
	c.Header("Content-Disposition", `attachment; filename="`+f.File.Name+`"`)
	http.ServeContent(c.Writer, c.Request, f.File.Name, modTime, io.NewSectionReader(file, 0, size))
	return nil
}

// fileUnavailableError: a recording file is on a node that cannot be
// reached (lost with the part it wrote, or not registered again yet).
type fileUnavailableError struct{ node string }

func (e *fileUnavailableError) Error() string {
	return fmt.Sprintf("the file is on node %q, which cannot be reached", e.node)
}

// recordingContentType is a file's media type: WebM or Matroska, audio
// when it holds no video.
func recordingContentType(f *recordpb.RecordingFile) string {
	video := slices.ContainsFunc(f.Codecs, func(c string) bool { return c != "opus" })
	switch {
	case f.Container == "mkv" && video:
		return "video/x-matroska"
	case f.Container == "mkv":
		return "audio/x-matroska"
	case video:
		return "video/webm"
	default:
		return "audio/webm"
	}
}

// autoStartJSON is a room's auto_start (VideoSDK's autoStartConfig): what
// starts by itself with each session.
type autoStartJSON struct {
	Recording *recordingSettingsJSON `json:"recording"`
}

type recordingSettingsJSON struct {
	Layout       string   `json:"layout"`
	AudioOnly    bool     `json:"audio_only"`
	Participants []string `json:"participants"`
}

func toAutoStartJSON(a *recordpb.AutoStart) *autoStartJSON {
	s := a.GetRecording()
	if s == nil {
		return nil
	}
	out := &recordingSettingsJSON{Layout: s.GetLayout(), AudioOnly: s.GetAudioOnly(), Participants: s.GetParticipants()}
	if out.Participants == nil {
		out.Participants = []string{}
	}
	return &autoStartJSON{Recording: out}
}

// decodeAutoStart reads auto_start: recording, with the options of a
// recording started through the API (null or absent: none). What else
// VideoSDK starts by itself needs decoding, and is refused as not provided.
func decodeAutoStart(o *jsonObject) (*recordpb.AutoStart, error) {
	if err := refuseNotProvided(o); err != nil {
		return nil, err
	}
	a := &recordpb.AutoStart{}
	rec, present, null, err := o.object("recording")
	if err != nil {
		return nil, err
	}
	if present && !null {
		opts, err := decodeRecordingOptions(rec)
		if err != nil {
			return nil, err
		}
		a.Recording = actors.RecordingSettingsOf(opts)
	}
	return a, o.finish()
}
