package main

import (
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// The commands that end and remove things, and the list filters the API
// has: recording list --status and --session, recording delete and
// session end; room list --help names every room status.
func TestCLIRecordingDeleteAndSessionEnd(t *testing.T) {
	s := cliServer(t)
	if help := mustCLI(t, "room", "list", "--help"); !strings.Contains(help, "active, ended, failed") {
		t.Fatalf("room list --help:\n%s", help)
	}
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One", "--recording")
	_, r := streamVideo(t, t.Context(), s, "r1")
	sid := cliJSON(t, "session", "list", "--room", "r1")["sessions"].([]any)[0].(map[string]any)["id"].(string)

	id := cliJSON(t, "recording", "start", "r1")["id"].(string)
	poll.Until(t, "video to be recorded a while", func() bool { return r.Stats().Packets >= 20 })
	if row := rowOf(mustCLI(t, "recording", "list", "--status", "recording", "--session", sid), id); row == "" {
		t.Fatalf("recording list --status recording --session does not show %s", id)
	}
	mustCLI(t, "recording", "stop", id)
	poll.Until(t, "the recording to complete", func() bool {
		return cliJSON(t, "recording", "get", id)["status"] == "completed"
	})
	if row := rowOf(mustCLI(t, "recording", "list", "--status", "completed", "--session", sid, "--room", "r1"), id); row == "" {
		t.Fatalf("recording list --status completed does not show %s", id)
	}
	if row := rowOf(mustCLI(t, "recording", "list", "--status", "recording"), id); row != "" {
		t.Fatalf("recording list --status recording shows the completed %s: %s", id, row)
	}
	if row := rowOf(mustCLI(t, "recording", "list", "--session", "ses_other"), id); row != "" {
		t.Fatalf("recording list --session ses_other shows %s: %s", id, row)
	}
	wantExit(t, 2, "--status \"bogus\": must be one of", "recording", "list", "--status", "bogus")

	if out := mustCLI(t, "recording", "delete", id); !strings.Contains(out, "deleted recording "+id) {
		t.Fatalf("recording delete printed %q", out)
	}
	wantExit(t, 1, "recording_not_found", "recording", "get", id)
	wantExit(t, 1, "recording_not_found", "recording", "delete", id)

	if row := rowOf(mustCLI(t, "session", "end", sid), "status"); !strings.Contains(row, "completed") {
		t.Fatalf("session end: status row %q", row)
	}
	wantExit(t, 1, "session_ended", "session", "end", sid)
	wantExit(t, 1, "session_not_found", "session", "end", "ses_nope")
	wantExit(t, 2, "usage: troupe session end SESSION", "session", "end")
}
