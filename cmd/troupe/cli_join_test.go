package main

import (
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// troupe join names its participant after its identity unless --name
// says otherwise, takes no --json (it prints no API answer), and says
// why the server ended the connection in Troupe's words.
func TestCLIJoinNameAndEnd(t *testing.T) {
	cliServer(t)
	mustCLI(t, "room", "create", "--id", "named", "--name", "Named")
	wantExit(t, 2, "unknown flag: --json", "join", "--room", "named", "--json")

	type result struct {
		code     int
		out, msg string
	}
	ran := make(chan result, 1)
	go func() {
		code, out, msg := cli(t, "join", "--room", "named", "--identity", "dora", "--duration", "2m")
		ran <- result{code, out, msg}
	}()
	var pid string
	poll.Until(t, "dora to be listed", func() bool {
		for _, p := range cliList(t, "participant", "list", "named") {
			if p := p.(map[string]any); p["identity"] == "dora" {
				if p["name"] != "dora" {
					t.Fatalf("dora's name is %q, want her identity", p["name"])
				}
				pid = p["id"].(string)
				return true
			}
		}
		return false
	})
	mustCLI(t, "participant", "kick", "named", pid)
	r := <-ran
	if r.code != 1 || !strings.Contains(r.msg, "the server ended the connection: you were removed from the room (kicked)") ||
		strings.Contains(r.msg, "Status") || strings.Contains(r.msg, "close frame") {
		t.Fatalf("troupe join, kicked: exit %d %q\n%s", r.code, r.msg, r.out)
	}
}

// cliServer starts a server for the API commands to call: they find it
// and its admin token in the environment.
func cliServer(t *testing.T) *testServer {
	t.Helper()
	s := startServer(t, testConfig(t.TempDir()))
	t.Setenv("TROUPE_URL", s.url)
	t.Setenv("TROUPE_TOKEN", s.token)
	return s
}
