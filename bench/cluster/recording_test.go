package cluster

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/recorder"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// recordingJSON is what the rig reads of a recording.
type recordingJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Part   int    `json:"part"`
	Files  []struct {
		Name      string `json:"name"`
		Part      int    `json:"part"`
		NodeID    string `json:"node_id"`
		Size      int64  `json:"size"`
		Writing   bool   `json:"writing"`
		Available bool   `json:"available"`
	} `json:"files"`
}

// getRecording reads recording id through node n; false if n did not
// answer 200 (a node that is taking the room over may answer 503).
func getRecording(t *testing.T, c *Cluster, n *Node, id string) (recordingJSON, bool) {
	t.Helper()
	var rec recordingJSON
	resp, err := c.Do(t.Context(), n, http.MethodGet, "/api/v1/recordings/"+id, nil)
	if err != nil || resp.Status != http.StatusOK {
		return rec, false
	}
	if err := resp.JSON(&rec); err != nil {
		t.Fatal(err)
	}
	return rec, true
}

// playClips publishes the VP8 and Opus clips (real media, 4 s) through
// member m and waits until they have been sent.
func playClips(t *testing.T, m *Member) {
	t.Helper()
	clips, err := recordertest.NewClips(recordertest.VP8Clip, recordertest.OpusClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := m.Client.Publish(ctx, clips.Video, clips.Audio); err != nil {
		t.Fatal(err)
	}
	clips.Play(ctx)
	if err := clips.Wait(); err != nil {
		t.Fatal(err)
	}
}

// checkRecordedFile checks a downloaded recording file: it reads as a
// whole recording (its header and every block), and, in the media suite
// (TROUPE_MEDIA_TESTS=1), ffmpeg decodes it with no error.
func checkRecordedFile(t *testing.T, what string, body []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file.webm")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := recorder.PlayablePrefix(f); err != nil || n != int64(len(body)) || n == 0 {
		t.Fatalf("%s: %d of its %d bytes read as a recording (%v)", what, n, len(body), err)
	}
	if recordertest.Enabled() {
		recordertest.DecodesClean(t, path)
		if got := recordertest.Codecs(t, path); !slices.Equal(got, []string{"vp8", "opus"}) && !slices.Equal(got, []string{"opus", "vp8"}) {
			t.Fatalf("%s: codecs %v", what, got)
		}
	}
}

// SIGKILL of the node recording a room: the node that takes the room over
// goes on with the same recording as its part 2, which the publisher's
// media, sent again through a live node, fills; stopped, the recording
// completes with both parts' files listed. Part 1's file, on the dead
// node, is listed unavailable and its download refused with a clear 503;
// the dead node, restarted, finalizes it (it stays part 1 of the same
// completed recording) and serves it, through any node.
func TestRecordingFailover(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	c.Expect(c.Live()[0], http.StatusCreated, "POST", "/api/v1/rooms",
		map[string]any{"id": "recfo", "name": "recfo", "config": map[string]any{"recording_enabled": true}})
	owner, err := c.Owner(ctx, "recfo")
	if err != nil {
		t.Fatal(err)
	}
	pub := join(t, c, nonOwners(c, owner)[0], "recfo", "pub", "publisher")
	var started recordingJSON
	if err := c.Expect(nonOwners(c, owner)[1], http.StatusCreated, "POST", "/api/v1/rooms/recfo/recordings", nil).JSON(&started); err != nil {
		t.Fatal(err)
	}
	id := started.ID
	playClips(t, pub)
	var rec recordingJSON
	poll.Until(t, "part 1's file written on "+owner.ID, func() bool {
		var ok bool
		rec, ok = getRecording(t, c, owner, id)
		return ok && len(rec.Files) == 1 && rec.Files[0].Size > 0
	})
	part1 := rec.Files[0]
	if part1.Part != 1 || part1.NodeID != owner.ID || !part1.Writing {
		t.Fatalf("part 1's file while it is written: %+v", part1)
	}

	killed := time.Now()
	owner.Kill()
	poll.Until(t, "the recording going on as part 2 on a live node", func() bool {
		var ok bool
		rec, ok = getRecording(t, c, c.Live()[0], id)
		return ok && rec.Part == 2
	})
	t.Logf("the recording went on as part 2 %v after its node's SIGKILL (lease TTL %v)", time.Since(killed).Round(time.Millisecond), c.LeaseTTL())
	if rec.Status != "recording" || len(rec.Files) != 1 || rec.Files[0].Name != part1.Name || rec.Files[0].Available {
		t.Fatalf("the recording after its node died: %+v", rec)
	}
	pub2 := rejoin(t, c, "recfo", "pub", "publisher")
	playClips(t, pub2)
	newOwner, err := c.Owner(ctx, "recfo")
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "part 2's file written", func() bool {
		var ok bool
		rec, ok = getRecording(t, c, c.Live()[0], id)
		return ok && len(rec.Files) == 2 && rec.Files[1].Size > 0
	})
	c.Expect(c.Live()[0], http.StatusOK, "POST", "/api/v1/recordings/"+id+"/stop", nil)
	poll.Until(t, "the recording completed", func() bool {
		var ok bool
		rec, ok = getRecording(t, c, c.Live()[0], id)
		return ok && rec.Status == "completed"
	})
	if rec.Part != 2 || len(rec.Files) != 2 {
		t.Fatalf("the recording completed: %+v", rec)
	}
	f1, f2 := rec.Files[0], rec.Files[1]
	if f1.Name != part1.Name || f1.Part != 1 || f1.NodeID != owner.ID || f1.Available || f1.Writing {
		t.Errorf("part 1's file, on the dead node: %+v", f1)
	}
	if f2.Part != 2 || f2.NodeID != newOwner.ID || !f2.Available || f2.Writing || !strings.HasSuffix(f2.Name, "-part2.webm") {
		t.Errorf("part 2's file: %+v", f2)
	}

	// Part 2's file, downloaded through a node that does not hold it.
	via := nonOwners(c, newOwner)[0]
	resp := c.Expect(via, http.StatusOK, "GET", "/api/v1/recordings/"+id+"/files/"+f2.Name, nil)
	if int64(len(resp.Body)) != f2.Size {
		t.Fatalf("part 2's file: %d bytes downloaded, %d listed", len(resp.Body), f2.Size)
	}
	checkRecordedFile(t, "part 2's file", resp.Body)
	// Part 1's, on the dead node: refused, naming it.
	resp = c.Expect(via, http.StatusServiceUnavailable, "GET", "/api/v1/recordings/"+id+"/files/"+f1.Name, nil)
	if !strings.Contains(string(resp.Body), `"recording_file_unavailable"`) || !strings.Contains(string(resp.Body), owner.ID) {
		t.Fatalf("part 1's file while its node is down: %s", resp.Body)
	}

	// The dead node comes back: its file, finalized, is part 1 of the
	// same recording, served through any node.
	if err := c.Restart(owner); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "part 1's file available again", func() bool {
		var ok bool
		rec, ok = getRecording(t, c, newOwner, id)
		return ok && len(rec.Files) == 2 && rec.Files[0].Available
	})
	if rec.Status != "completed" || rec.Part != 2 {
		t.Fatalf("the recording after its first node came back: %+v", rec)
	}
	resp = c.Expect(newOwner, http.StatusOK, "GET", "/api/v1/recordings/"+id+"/files/"+f1.Name, nil)
	checkRecordedFile(t, "part 1's file, finalized by its node", resp.Body)
}
