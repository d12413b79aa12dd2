package persistence

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var (
	inProgress = recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS
	sesEnded   = recordpb.SessionStatus_SESSION_STATUS_ENDED
	anySession = recordpb.SessionStatus_SESSION_STATUS_UNSPECIFIED
)

func mustApply(t testing.TB, s *Store, w Writes) {
	t.Helper()
	if err := s.Apply(context.Background(), w); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func sessionIDs(ss []*recordpb.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Id
	}
	return out
}

func TestInProgressSessions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{
		recordtest.Session("ses_a", "r1", inProgress, 10), recordtest.Session("ses_b", "r2", sesEnded, 20),
		recordtest.Session("ses_c", "r3", inProgress, 30), recordtest.Session("ses_d", "r1", sesEnded, 5),
	}})
	s.Close()

	// After a restart the sessions left open are found and closed.
	s = openStore(t, dir)
	open, err := s.InProgressSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := sessionIDs(open); !slices.Equal(got, []string{"ses_c", "ses_a"}) {
		t.Fatalf("InProgressSessions = %v, want [ses_c ses_a]", got)
	}
	var closed []*recordpb.Session
	for _, sess := range open {
		sess.Status, sess.EndTime, sess.EndReason = sesEnded, sess.LastActivityAt, "server-restart"
		closed = append(closed, sess)
	}
	mustApply(t, s, Writes{Sessions: closed})
	if open, err := s.InProgressSessions(ctx); err != nil || len(open) != 0 {
		t.Fatalf("InProgressSessions after closing = %v, %v", sessionIDs(open), err)
	}
	if page, _ := s.ListSessions(ctx, SessionQuery{Status: sesEnded}); page.Total != 4 {
		t.Fatalf("ended sessions = %d, want 4", page.Total)
	}
}

func TestCorruptSessionValue(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{recordtest.Session("ses_1", "r", inProgress, 0), recordtest.Session("ses_2", "r", inProgress, 1)}})
	if err := s.db.Set(sessionKey("ses_1"), []byte{sessionSchemaV1, 0xff, 0xff}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSession(ctx, "ses_1")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Kind != KindSession {
		t.Fatalf("GetSession = %v, want a CorruptError of kind session", err)
	}
	if _, err := s.InProgressSessions(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("InProgressSessions = %v, want ErrCorrupt", err)
	}
	// Replacing the unreadable session (with another status) leaves one
	// consistent set of listing entries, and the counts follow.
	mustApply(t, s, Writes{Sessions: []*recordpb.Session{recordtest.Session("ses_1", "r", sesEnded, 0)}})
	assertSessionIndexConsistent(t, s)
	if got := s.sessionCounts.get("r", inProgress); got != 1 {
		t.Errorf("in-progress count = %d, want 1", got)
	}
}

// assertSessionIndexConsistent checks that every session has exactly its
// four listing entries, and that there are no others.
func assertSessionIndexConsistent(t *testing.T, s *Store) {
	t.Helper()
	want := map[string]bool{}
	sessions := 0
	err := s.scanKeys([]byte(prefixSession), func(key []byte) error {
		v, closer, err := s.db.Get(key)
		if err != nil {
			return err
		}
		defer closer.Close()
		sess, err := decodeSession(v)
		if err != nil {
			return err
		}
		sessions++
		for _, k := range sessionIndexKeys(sess.RoomId, sess.Status, sess.StartTime.AsTime().UnixNano(), sess.Id) {
			want[string(k)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if err := s.scanKeys([]byte("sesidx/"), func(key []byte) error {
		got[string(key)] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4*sessions {
		t.Errorf("%d index entries for %d sessions", len(got), sessions)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("missing index entry %q", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("stale index entry %q", k)
		}
	}
	if n := s.sessionCounts.get("", anySession); n != sessions {
		t.Errorf("session count %d, want %d", n, sessions)
	}
}

func TestParseSessionIndexKey(t *testing.T) {
	start := recordtest.Epoch.UnixNano()
	for _, room := range []string{"room_1", "a/b%c"} {
		for i, k := range sessionIndexKeys(room, sesEnded, start, "ses_9") {
			e, err := parseSessionIndexKey(k)
			if err != nil || e.id != "ses_9" {
				t.Fatalf("parse %q = %+v, %v", k, e, err)
			}
			if e.hasRoom != (i >= 2) || (e.hasRoom && e.room != room) {
				t.Errorf("key %d of room %q: room %q (%v)", i, room, e.room, e.hasRoom)
			}
			if e.hasStatus != (i%2 == 1) || (e.hasStatus && e.status != sesEnded) {
				t.Errorf("key %d of room %q: status %v (%v)", i, room, e.status, e.hasStatus)
			}
		}
	}
	for _, bad := range [][]byte{[]byte("sesidx/st/x/12345678id"), []byte("sesidx/all/short"), []byte("sesidx/rst/r"), []byte("sesidx/room/a%zz/12345678id")} {
		if _, err := parseSessionIndexKey(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
	if !bytes.HasPrefix(sessionListPrefix("a/b", sesEnded), []byte("sesidx/rst/a%2Fb/2/")) {
		t.Errorf("room id not escaped: %q", sessionListPrefix("a/b", sesEnded))
	}
}
