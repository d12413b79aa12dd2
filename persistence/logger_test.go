package persistence

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/troupe-media/troupe/internal/syncbuf"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
)

// TestPebbleLogsAtDebug checks that Pebble's routine messages reach slog at
// debug level only, so an info-level server log stays quiet.
func TestPebbleLogsAtDebug(t *testing.T) {
	var out syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Open(Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		mustPut(t, s, recordtest.Room(string(rune('a'+i)), active, i))
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	debug := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(line, `msg="pebble: `) {
			continue
		}
		if !strings.Contains(line, "level=DEBUG") {
			t.Errorf("pebble message above debug level: %s", line)
		}
		debug++
	}
	if debug == 0 {
		t.Fatalf("no pebble message logged at debug level; log:\n%s", out.String())
	}
	t.Logf("%d pebble messages at debug level", debug)
}
