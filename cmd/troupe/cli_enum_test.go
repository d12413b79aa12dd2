package main

import (
	"strings"
	"testing"
)

// An enum flag's wrong value is refused by the CLI itself, before any
// call: exit 2 and one line that lists the values. Those values are the
// API's: the server accepts each of them.
func TestCLIEnumFlagsCheckedBeforeTheCall(t *testing.T) {
	cliServer(t)
	mustCLI(t, "room", "create", "--id", "r1", "--name", "One")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"room", "create", "--name", "x", "--privacy", "bogus"}, `--privacy "bogus": must be one of private, public`},
		{[]string{"room", "update", "r1", "--default-role", "owner"}, `--default-role "owner": must be one of publisher, subscriber`},
		{[]string{"room", "list", "--status", "gone"}, `--status "gone": must be one of active, ended, failed`},
		{[]string{"session", "list", "--status", ""}, `--status "": must be one of in-progress, completed`},
		{[]string{"recording", "list", "--status", "done"}, `--status "done": must be one of starting, recording, stopping, completed, failed`},
		{[]string{"participant", "mute", "r1", "p_x", "--kind", "smell"}, `--kind "smell": must be one of audio, video`},
	} {
		wantExit(t, 2, tc.says, tc.args...)
	}
	// Nothing was created or changed.
	if page := cliJSON(t, "room", "list"); page["total"] != float64(1) {
		t.Fatalf("rooms after refused commands: %v", page)
	}
	if got := cliJSON(t, "room", "get", "r1"); got["default_role"] != "publisher" {
		t.Fatalf("r1 after a refused update: %v", got)
	}

	// Every value the CLI takes, the server takes too.
	for _, route := range []struct{ cmd, route string }{
		{"room", "/api/v1/rooms"}, {"session", "/api/v1/sessions"}, {"recording", "/api/v1/recordings"},
	} {
		for _, v := range queryEnum(route.route, "status") {
			mustCLI(t, route.cmd, "list", "--status", v)
		}
	}
	for _, v := range schemaEnum("CreateRoomRequest", "privacy") {
		mustCLI(t, "room", "create", "--name", "x", "--privacy", v)
	}
	for _, v := range schemaEnum("PatchRoomRequest", "default_role") {
		mustCLI(t, "room", "update", "r1", "--default-role", v)
	}
	if help := mustCLI(t, "room", "create", "--help"); !strings.Contains(help, "(private, public)") {
		t.Fatalf("room create --help does not list the privacies:\n%s", help)
	}
}
