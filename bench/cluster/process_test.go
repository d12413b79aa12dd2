package cluster

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/poll"
)

// startShell runs a shell script as a rig process.
func startShell(t *testing.T, script string) *process {
	t.Helper()
	p, err := startProcess("sh", "/bin/sh", []string{"-c", script}, nil, filepath.Join(t.TempDir(), "sh.log"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A process the rig stopped, killed, or that ended on SIGTERM stops
// cleanly; one that exited by itself is reported.
func TestProcessStop(t *testing.T) {
	p := startShell(t, "exec sleep 60")
	if err := p.stop(); err != nil {
		t.Errorf("stop of a process that dies of SIGTERM: %v", err)
	}

	p = startShell(t, "exec sleep 60")
	if stopped, err := allStopped(p.pid()); stopped || err != nil {
		t.Fatalf("a running process reads stopped: %v, %v", stopped, err)
	}
	if err := p.pause(); err != nil {
		t.Fatal(err)
	}
	// pause returns once the process has stopped.
	if stopped, err := allStopped(p.pid()); !stopped || err != nil {
		t.Fatalf("a paused process reads running: %v, %v", stopped, err)
	}
	// A frozen process is continued before it is asked to stop.
	if err := p.stop(); err != nil {
		t.Errorf("stop of a paused process: %v", err)
	}

	p = startShell(t, "exec sleep 60")
	p.kill()
	if p.alive() {
		t.Error("alive after kill")
	}
	if err := p.stop(); err != nil {
		t.Errorf("stop after kill: %v", err)
	}

	p = startShell(t, "exit 3")
	poll.Until(t, "the process to exit", func() bool { return !p.alive() })
	if err := p.stop(); err == nil || !strings.Contains(err.Error(), "exited by itself") {
		t.Errorf("stop of a process that exited by itself: %v", err)
	}
}

// A process's log shows its panics, fatal errors and data races.
func TestTroubles(t *testing.T) {
	log := filepath.Join(t.TempDir(), "node.log")
	text := "time=x level=INFO msg=ok\npanic: boom\n\ngoroutine 1 [running]:\nWARNING: DATA RACE\nfatal error: concurrent map writes\nmsg=\"no panic: here\"\n"
	if err := os.WriteFile(log, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := troubles(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"panic: boom", "WARNING: DATA RACE", "fatal error: concurrent map writes"}
	if !slices.Equal(got, want) {
		t.Errorf("troubles = %q, want %q", got, want)
	}
	if got := tail(log, 2); got != "... (5 lines before)\nfatal error: concurrent map writes\nmsg=\"no panic: here\"" {
		t.Errorf("tail = %q", got)
	}
}

func TestCandidateIP(t *testing.T) {
	for cand, want := range map[string]string{
		"candidate:1 1 udp 2130706431 127.0.0.2 40000 typ host":           "127.0.0.2",
		"candidate:2 1 udp 1694498815 203.0.113.9 5000 typ srflx raddr x": "203.0.113.9",
		"candidate:1 1 udp 2130706431 127.0.0.2":                          "",
		"ice-ufrag:abc":                                                   "",
	} {
		got, ok := CandidateIP(cand)
		if got != want || ok != (want != "") {
			t.Errorf("CandidateIP(%q) = %q, %v; want %q", cand, got, ok, want)
		}
	}
}
