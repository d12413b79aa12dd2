//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A data dir that already exists open to others (a packaged install's
// `mkdir /var/lib/troupe`, a container volume) is made 0700 when the
// server starts, logged once; the webhook secret and the join token kept
// for replay, which Pebble writes into files 0644, are then out of other
// users' reach.
func TestExistingOpenDataDirIsMadePrivate(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Open to others whatever the umask, as are the test's temporary dirs
	// above it (0700), so that only the data dir's own mode stands in
	// their way.
	for _, d := range []string{filepath.Dir(parent), parent, dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(dir)
	cfg.LogLevel = "info"
	cfg.WebhookAllowPrivate = true // the endpoint is on loopback
	s := startServer(t, cfg)
	const secret = "Zq7uKp2mWx9vLr4tYb8nHc3dJf6gSa1e"
	s.mustDo(http.StatusCreated, http.MethodPost, "/api/v1/rooms",
		`{"id":"w","name":"W","webhook":{"endpoint":"http://127.0.0.1:9/h","events":["*"],"secret":"`+secret+`"}}`)
	resp, body := s.request(http.MethodPost, "/api/v1/rooms/w/tokens", `{"identity":"u","role":"publisher"}`,
		http.Header{"Idempotency-Key": {"tok-1"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var minted struct{ Token string }
	if err := json.Unmarshal(body, &minted); err != nil || len(minted.Token) < 40 {
		t.Fatalf("token: %s: %v", body, err)
	}

	kept := []string{secret, minted.Token[len(minted.Token)-30:]}
	asNobody := os.Geteuid() == 0 // root reads anything: ask another user
	t.Run("another user finds nothing", func(t *testing.T) {
		if !asNobody {
			t.Skip("not root: cannot search as another user")
		}
		for _, what := range kept {
			if found := grepAsNobody(t, what, dir); found != "" {
				t.Errorf("another user finds %q in %s", what, found)
			}
		}
	})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Fatalf("data dir mode %04o, want 0700", perm)
	}
	if n := strings.Count(s.log.String(), "made it private"); n != 1 {
		t.Fatalf("the tightening logged %d times, want once:\n%s", n, s.log.String())
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	// The control: with the data dir open again, the same search finds
	// what the server wrote, so it is the dir's mode that kept it out.
	t.Run("another user finds it in an open data dir", func(t *testing.T) {
		if !asNobody {
			t.Skip("not root: cannot search as another user")
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		for _, what := range kept {
			if found := grepAsNobody(t, what, dir); found == "" {
				t.Errorf("another user does not find %q in the open data dir: the search proves nothing", what)
			}
		}
	})

	// Private already: nothing to do, nothing logged.
	s = startServer(t, cfg)
	if strings.Contains(s.log.String(), "made it private") {
		t.Fatalf("a private data dir logged as tightened:\n%s", s.log.String())
	}
}

// grepAsNobody searches dir for what as uid 65534, and returns the files
// it found it in. A grep that did not search (the uid switch refused, in
// a user namespace that does not map 65534) fails the test, rather than
// finding nothing.
func grepAsNobody(t *testing.T, what, dir string) string {
	t.Helper()
	grep, err := exec.LookPath("grep")
	if err != nil {
		t.Skip("no grep")
	}
	cmd := exec.Command(grep, "-r", "-l", "-F", what, dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil: // found
	case errors.As(err, &exit) && exit.ExitCode() == 1: // searched, nothing found
	case errors.As(err, &exit) && exit.ExitCode() == 2 && strings.Contains(stderr.String(), "Permission denied"):
		// Searched, and refused what it may not read.
	default:
		t.Fatalf("grep as uid 65534: %v: %s", err, stderr.String())
	}
	return strings.TrimSpace(out.String())
}

// A data dir another user owns is refused with one line and left as it
// was; so is a file in its place.
func TestDataDirRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	owner, ok := fileOwner(fi)
	if !ok {
		t.Skip("no file owners on this system")
	}
	var log bytes.Buffer
	err = prepareDataDirAs(dir, owner+1, slog.New(slog.NewTextHandler(&log, nil)))
	if !errors.Is(err, ErrDataDir) || !strings.Contains(err.Error(), "owned by uid") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("a data dir of another user: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 || log.Len() != 0 {
		t.Fatalf("the refused data dir changed: %v %v, logged %q", fi.Mode(), err, log.String())
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareDataDirAs(file, owner, slog.New(slog.NewTextHandler(&log, nil))); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file as data dir: %v", err)
	}
}
