package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// cli runs the troupe command line in this process against whatever its
// flags name, and returns the exit status main would give, stdout, and
// the one line main would print on stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	if err := root.ExecuteContext(t.Context()); err != nil {
		return exitStatus(err), out.String(), oneLine(err.Error())
	}
	return 0, out.String(), ""
}

// mustCLI runs the command line and fails the test unless it exits 0.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	code, out, msg := cli(t, args...)
	if code != 0 {
		t.Fatalf("troupe %s: exit %d: %s\n%s", strings.Join(args, " "), code, msg, out)
	}
	return out
}

// cliJSON runs the command line with --json and decodes the object it
// prints.
func cliJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	return cliDecode[map[string]any](t, args...)
}

// cliList is cliJSON for a command that prints an array.
func cliList(t *testing.T, args ...string) []any {
	t.Helper()
	return cliDecode[[]any](t, args...)
}

func cliDecode[T any](t *testing.T, args ...string) T {
	t.Helper()
	out := mustCLI(t, append(args, "--json")...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil || any(v) == nil {
		t.Fatalf("troupe %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
	return v
}

// wantExit runs the command line and checks its exit status and that its
// message says what went wrong.
func wantExit(t *testing.T, code int, says string, args ...string) {
	t.Helper()
	got, out, msg := cli(t, args...)
	if got != code || !strings.Contains(msg, says) {
		t.Fatalf("troupe %s: exit %d %q, want exit %d saying %q\n%s", strings.Join(args, " "), got, msg, code, says, out)
	}
}

// rowOf returns the table line that starts with first, or "".
func rowOf(table, first string) string {
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return line
		}
	}
	return ""
}

// The room commands against a running server: the token minted from the
// data dir's key, or given by flag or environment; tables and JSON; and
// every kind of failure with its exit status.
func TestCLIRoomCommands(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, testConfig(dir))
	conn := []string{"--url", s.url, "--data-dir", dir} // the token minted from the local key

	out := mustCLI(t, append([]string{"room", "create", "--id", "demo", "--name", "Demo", "--max-participants", "5"}, conn...)...)
	if row := rowOf(out, "config.max_participants"); !strings.Contains(row, " 5") {
		t.Fatalf("room create printed:\n%s", out)
	}
	mustCLI(t, append([]string{"room", "create", "--name", "Other"}, conn...)...)
	out = mustCLI(t, append([]string{"room", "update", "demo", "--privacy", "public"}, conn...)...)
	if !strings.Contains(rowOf(out, "privacy"), "public") || !strings.Contains(rowOf(out, "url"), s.url+"/rooms/demo") {
		t.Fatalf("room update --privacy printed:\n%s", out)
	}
	out = mustCLI(t, append([]string{"room", "list"}, conn...)...)
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(rowOf(out, "demo"), "Demo") || !strings.Contains(rowOf(out, "demo"), "active") {
		t.Fatalf("room list printed:\n%s", out)
	}
	page := cliJSON(t, append([]string{"room", "list", "--limit", "1"}, conn...)...)
	if rooms := page["rooms"].([]any); len(rooms) != 1 || page["total"] != float64(2) {
		t.Fatalf("room list --limit 1 --json: %v", page)
	}
	if out := mustCLI(t, append([]string{"room", "list", "--limit", "1"}, conn...)...); !strings.Contains(out, "(1 of 2;") {
		t.Fatalf("a partial page does not say so:\n%s", out)
	}

	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	if got := cliJSON(t, "room", "get", "demo"); got["name"] != "Demo" {
		t.Fatalf("room get with the environment's URL and token: %v", got)
	}
	if got := cliJSON(t, "room", "update", "demo", "--locked", "--name", "Renamed"); got["name"] != "Renamed" || got["config"].(map[string]any)["locked"] != true {
		t.Fatalf("room update: %v", got)
	}
	if row := rowOf(mustCLI(t, "room", "get", "demo"), "config.locked"); !strings.Contains(row, "true") {
		t.Fatal("room get does not show the room locked")
	}
	if got := cliJSON(t, "room", "end", "demo"); got["status"] != "ended" {
		t.Fatalf("room end: %v", got)
	}
	if out := mustCLI(t, "room", "delete", "demo"); !strings.Contains(out, "deleted room demo") {
		t.Fatalf("room delete printed %q", out)
	}

	// The API refuses: exit 1 with its code.
	wantExit(t, 1, "room_not_found", "room", "get", "demo")
	wantExit(t, 1, "room_not_found", "room", "end", "nope")
	wantExit(t, 1, "room_exists", "room", "create", "--name", "Again", "--id", mustCLIRoomID(t))
	wantExit(t, 1, "validation_failed", "room", "create", "--name", "x", "--max-participants", "-3")
	wantExit(t, 1, "unauthorized", "room", "list", "--token", "not-a-token")
	// No server: exit 1, saying where it looked.
	wantExit(t, 1, "cannot reach the server at http://127.0.0.1:1", "room", "list", "--url", "http://127.0.0.1:1")
	// No token and no key: exit 1, saying how to get one.
	t.Setenv("TROUPE_TOKEN", "")
	wantExit(t, 1, "no token", "room", "list", "--data-dir", t.TempDir())
	// The command line is wrong: exit 2.
	wantExit(t, 2, "needs --name", "room", "create")
	wantExit(t, 2, "nothing to change", "room", "update", "x")
	wantExit(t, 2, "usage: troupe room get ROOM", "room", "get")
	wantExit(t, 2, "unknown flag", "room", "list", "--bogus")
	wantExit(t, 2, "must not be negative", "room", "list", "--limit", "-1")
	wantExit(t, 2, "--url", "room", "list", "--url", "ftp://example.com")
	wantExit(t, 2, "invalid argument", "room", "list", "--limit", "many")
}

// cellUnder returns the cell of a table's row (by its first cell) under
// header, or "". The cells hold no spaces.
func cellUnder(table, first, header string) string {
	lines := strings.Split(table, "\n")
	row := strings.Fields(rowOf(table, first))
	for i, h := range strings.Fields(lines[0]) {
		if h == header && i < len(row) {
			return row[i]
		}
	}
	return ""
}

// mustCLIRoomID returns the id of a room listed by the server the
// environment names.
func mustCLIRoomID(t *testing.T) string {
	t.Helper()
	page := cliJSON(t, "room", "list")
	rooms := page["rooms"].([]any)
	if len(rooms) == 0 {
		t.Fatal("no room listed")
	}
	return rooms[0].(map[string]any)["id"].(string)
}

// The participant and session commands against a room with a publisher.
func TestCLIParticipantAndSessionCommands(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One")
	streamVideo(t, t.Context(), s, "r1") // "pub" sends video, "sub" receives it

	var pid string
	for _, p := range cliList(t, "participant", "list", "r1") {
		if p := p.(map[string]any); p["identity"] == "pub" {
			pid = p["id"].(string)
		}
	}
	if pid == "" {
		t.Fatal("the publisher is not listed")
	}
	var out string
	poll.Until(t, "the publisher's track to be listed", func() bool {
		out = mustCLI(t, "participant", "list", "r1")
		return strings.Contains(rowOf(out, pid), "video/")
	})
	if row := rowOf(out, pid); !strings.Contains(row, "pub") || !strings.Contains(row, "video/") {
		t.Fatalf("participant list printed:\n%s", out)
	}
	if out := mustCLI(t, "participant", "mute", "r1", pid, "--kind", "video"); !strings.Contains(out, "muted the video of "+pid) {
		t.Fatalf("participant mute printed %q", out)
	}
	// The room lists the mute once the participant has applied it.
	poll.Until(t, "the muted video to be listed muted", func() bool {
		return strings.Contains(rowOf(mustCLI(t, "participant", "list", "r1"), pid), "video/VP8 (muted)")
	})
	mustCLI(t, "participant", "mute", "r1", pid, "--kind", "video", "--unmute")
	wantExit(t, 2, "--kind", "participant", "mute", "r1", pid, "--kind", "smell")
	wantExit(t, 1, "participant_not_found", "participant", "mute", "r1", "p_nobody", "--kind", "audio")

	sessions := cliJSON(t, "session", "list", "--room", "r1")["sessions"].([]any)
	if len(sessions) != 1 {
		t.Fatalf("sessions of r1: %v", sessions)
	}
	sid := sessions[0].(map[string]any)["id"].(string)
	if row := rowOf(mustCLI(t, "session", "list"), sid); !strings.Contains(row, "r1") || !strings.Contains(row, "in-progress") {
		t.Fatalf("session list does not show %s in progress", sid)
	}
	if row := rowOf(mustCLI(t, "session", "get", sid), "room_id"); !strings.Contains(row, "r1") {
		t.Fatalf("session get: room_id row %q", row)
	}
	if out := mustCLI(t, "session", "stats", sid); !strings.Contains(rowOf(out, pid), "pub") || rowOf(out, "TOTAL") == "" {
		t.Fatalf("session stats printed:\n%s", out)
	}

	if out := mustCLI(t, "participant", "kick", "r1", pid); !strings.Contains(out, "kicked "+pid) {
		t.Fatalf("participant kick printed %q", out)
	}
	// The list shows who is in the session now and how many joined it.
	poll.Until(t, "the session to count the kicked publisher gone", func() bool {
		return cliJSON(t, "session", "get", sid)["participant_count"] == float64(1)
	})
	out = mustCLI(t, "session", "list")
	if present, joins := cellUnder(out, sid, "PRESENT"), cellUnder(out, sid, "JOINS"); present != "1" || joins != "2" {
		t.Fatalf("session list: PRESENT %q JOINS %q, want 1 and 2:\n%s", present, joins, out)
	}
	wantExit(t, 1, "participant_not_found", "participant", "kick", "r1", pid)
	// The history is written as the participant's leave completes.
	poll.Until(t, "the session's history to show the kick", func() bool {
		return strings.Contains(rowOf(mustCLI(t, "session", "participants", sid), pid), "kicked")
	})
	if got := mustCLI(t, "participant", "list", "r1"); rowOf(got, pid) != "" {
		t.Fatalf("participants after the kick:\n%s", got)
	}
	wantExit(t, 1, "session_not_found", "session", "get", "ses_nope")
	wantExit(t, 1, "session_not_found", "session", "stats", "ses_nope")
	wantExit(t, 1, "room_not_found", "participant", "list", "nope")
	wantExit(t, 2, "usage: troupe participant kick ROOM PARTICIPANT", "participant", "kick", "r1")
	wantExit(t, 2, "must not be negative", "session", "list", "--offset", "-2")
}

// packetsSeen returns the packets counted on the last rates line for the
// track whose label holds what, or 0.
func packetsSeen(out, what string) int {
	seen := 0
	for _, line := range strings.Split(out, "\n") {
		for _, part := range strings.Split(line, "; ") {
			if !strings.Contains(part, what) {
				continue
			}
			if _, n, ok := strings.Cut(part, "("); ok {
				fmt.Sscanf(n, "%d packets", &seen)
			}
		}
	}
	return seen
}

// troupe join receives a room's media and prints it, and with --publish
// sends video and audio that the room lists; a refused join or a wrong
// command line says so.
func TestCLIJoin(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One")
	streamVideo(t, t.Context(), s, "r1") // "pub" sends video

	// Long enough to connect and count on a loaded machine.
	out := mustCLI(t, "join", "--room", "r1", "--identity", "watcher", "--duration", "5s", "--every", "500ms")
	if !strings.Contains(out, "joined room r1 as watcher (subscriber") || !strings.Contains(out, "video video/VP8") ||
		!strings.Contains(out, "left the room") || packetsSeen(out, "video/vp8") == 0 {
		t.Fatalf("troupe join printed:\n%s", out)
	}

	type result struct {
		code     int
		out, msg string
	}
	ran := make(chan result, 1)
	go func() {
		code, out, msg := cli(t, "join", "--room", "r1", "--identity", "cli-pub", "--publish", "--duration", "30s")
		ran <- result{code, out, msg}
	}()
	poll.Until(t, "the CLI's video and audio to be listed", func() bool {
		for _, p := range cliList(t, "participant", "list", "r1") {
			p := p.(map[string]any)
			if p["identity"] == "cli-pub" {
				tracks, _ := json.Marshal(p["tracks"])
				return strings.Contains(string(tracks), `"kind":"video"`) && strings.Contains(string(tracks), `"kind":"audio"`)
			}
		}
		return false
	})
	var pid string
	for _, p := range cliList(t, "participant", "list", "r1") {
		if p := p.(map[string]any); p["identity"] == "cli-pub" {
			pid = p["id"].(string)
		}
	}
	// Kicked, it stops at once and says why.
	mustCLI(t, "participant", "kick", "r1", pid)
	r := <-ran
	if r.code != 1 || !strings.Contains(r.msg, "the server ended the connection") || !strings.Contains(r.out, "publishing synthetic video") {
		t.Fatalf("troupe join --publish, kicked: exit %d %q\n%s", r.code, r.msg, r.out)
	}

	wantExit(t, 1, "room_not_found", "join", "--room", "nope", "--duration", "1s")
	wantExit(t, 2, "--room", "join")
	wantExit(t, 2, "--every", "join", "--room", "r1", "--every", "0s")
	wantExit(t, 2, "--duration", "join", "--room", "r1", "--duration", "-1s")
}

// The recording commands: a recording of a room with video started,
// stopped, shown and its file downloaded as the server has it.
func TestCLIRecordingCommands(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One", "--recording")
	_, r := streamVideo(t, t.Context(), s, "r1")

	rec := cliJSON(t, "recording", "start", "r1")
	id, _ := rec["id"].(string)
	if id == "" || rec["room_id"] != "r1" {
		t.Fatalf("recording start: %v", rec)
	}
	poll.Until(t, "video to be recorded a while", func() bool { return r.Stats().Packets >= 50 })
	if row := rowOf(mustCLI(t, "recording", "list"), id); !strings.Contains(row, "r1") {
		t.Fatalf("recording list does not show %s", id)
	}
	if row := rowOf(mustCLI(t, "recording", "list", "--room", "r1"), id); row == "" {
		t.Fatalf("recording list --room r1 does not show %s", id)
	}
	mustCLI(t, "recording", "stop", id)
	var file map[string]any
	poll.Until(t, "the recording to complete with a file", func() bool {
		got := cliJSON(t, "recording", "get", id)
		files, _ := got["files"].([]any)
		if got["status"] != "completed" || len(files) == 0 {
			return false
		}
		file = files[0].(map[string]any)
		return true
	})
	name := file["name"].(string)
	// The files are a table of their own, not JSON in a cell.
	out := mustCLI(t, "recording", "get", id)
	if row := rowOf(out, name); strings.Contains(out, "{") || !strings.Contains(row, "vp8") ||
		cellUnder(out[strings.Index(out, "\nFILE ")+1:], name, "BYTES") != fmt.Sprint(file["size"]) {
		t.Fatalf("recording get printed:\n%s", out)
	}
	dst := filepath.Join(t.TempDir(), "got.webm")
	if out := mustCLI(t, "recording", "download", id, name, "-o", dst); !strings.Contains(out, "wrote "+dst) {
		t.Fatalf("recording download printed %q", out)
	}
	info, err := os.Stat(dst)
	if err != nil || info.Size() == 0 || float64(info.Size()) != file["size"] {
		t.Fatalf("downloaded %v (%v), want %v bytes", info, err, file["size"])
	}

	wantExit(t, 1, "recording_not_found", "recording", "get", "rec_nope")
	wantExit(t, 1, "room_not_found", "recording", "start", "nope")
	wantExit(t, 1, "not_found", "recording", "download", id, "nope.webm", "-o", filepath.Join(t.TempDir(), "x"))
	wantExit(t, 2, "usage: troupe recording download RECORDING FILE [-o PATH]", "recording", "download", id)
}

// troupe join reads its receivers' RTCP, as a client should, so that it
// answers the server's sender reports and the server measures the round
// trip to it.
func TestCLIJoinAnswersSenderReports(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One")
	sendVideo(t, t.Context(), s, "r1")

	joinCtx, leave := context.WithCancel(t.Context())
	joined := make(chan error, 1)
	go func() {
		root := newRootCmd()
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		root.SetArgs([]string{"join", "--room", "r1", "--identity", "watcher"})
		joined <- root.ExecuteContext(joinCtx)
	}()
	poll.Until(t, "a round trip measured to the CLI", func() bool {
		text := metricsText(t, s)
		return !strings.Contains(text, `troupe_rtc_round_trip_time_seconds_count{kind="video"} 0`) &&
			strings.Contains(text, `troupe_rtc_round_trip_time_seconds_count{kind="video"} `)
	})
	leave()
	if err := <-joined; err != nil {
		t.Fatalf("troupe join: %v", err)
	}
}
