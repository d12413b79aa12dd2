package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/internal/poll"
)

// TestDecodeTrackSettings: what a track-settings message may say, and the
// field named when it says it wrong.
func TestDecodeTrackSettings(t *testing.T) {
	tests := []struct {
		msg   string
		want  actors.TrackSettings
		field string // the field refused; "" for a message taken
	}{
		{`{"type":"track-settings","track_id":"TR_a","max_quality":"360p"}`, actors.TrackSettings{MaxLines: 360}, ""},
		{`{"type":"track-settings","track_id":"TR_a","width":320,"height":180}`, actors.TrackSettings{Width: 320, Height: 180}, ""},
		{`{"type":"track-settings","track_id":"TR_a","max_quality":"1080p","width":1,"height":16384}`, actors.TrackSettings{MaxLines: 1080, Width: 1, Height: 16384}, ""},
		{`{"type":"track-settings","track_id":"TR_a"}`, actors.TrackSettings{}, ""},
		{`{"type":"track-settings"}`, actors.TrackSettings{}, "track_id"},
		{`{"type":"track-settings","track_id":""}`, actors.TrackSettings{}, "track_id"},
		{`{"type":"track-settings","track_id":"TR_a","max_quality":"4k"}`, actors.TrackSettings{}, "max_quality"},
		{`{"type":"track-settings","track_id":"TR_a","max_quality":null}`, actors.TrackSettings{}, "max_quality"},
		{`{"type":"track-settings","track_id":"TR_a","width":320}`, actors.TrackSettings{}, "width"},
		{`{"type":"track-settings","track_id":"TR_a","width":0,"height":180}`, actors.TrackSettings{}, "width"},
		{`{"type":"track-settings","track_id":"TR_a","width":320,"height":16385}`, actors.TrackSettings{}, "height"},
		{`{"type":"track-settings","track_id":"TR_a","width":320.5,"height":180}`, actors.TrackSettings{}, "width"},
		{`{"type":"track-settings","track_id":"TR_a","paused":true}`, actors.TrackSettings{Paused: true}, ""},
		{`{"type":"track-settings","track_id":"TR_a","width":320,"height":180,"paused":false}`, actors.TrackSettings{Width: 320, Height: 180}, ""},
		{`{"type":"track-settings","track_id":"TR_a","paused":null}`, actors.TrackSettings{}, "paused"},
	}
	// A value of the wrong JSON type is a 400, the field named.
	_, err := decodeClientMsg([]byte(`{"type":"track-settings","track_id":"TR_a","paused":"yes"}`))
	if ae, _ := toAPIError(err); ae.status != http.StatusBadRequest || ae.code != codeInvalidType || ae.details["field"] != "paused" {
		t.Errorf("a string for paused: %v", err)
	}
	for _, tt := range tests {
		m, err := decodeClientMsg([]byte(tt.msg))
		if tt.field == "" {
			if err != nil || m.typ != msgTrackSettings || m.track != "TR_a" || m.settings != tt.want {
				t.Errorf("%s: %+v, %v", tt.msg, m, err)
			}
			continue
		}
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity {
			t.Errorf("%s: error %v, want a refusal of %s", tt.msg, err, tt.field)
			continue
		}
		if got := ae.details["field"]; got != tt.field {
			t.Errorf("%s: refused field %q, want %q", tt.msg, got, tt.field)
		}
	}
}

// TestSimulcastTrackSettings: a viewer of a three-layer camera that asks
// for the size of a thumbnail gets the lowest layer; one that names a
// track it does not receive is told so, and keeps its socket. A maximum
// quality holds the viewer to the layer within it (360p: the middle
// one, 180p: the lowest), and dropping it moves the viewer back up.
func TestSimulcastTrackSettings(t *testing.T) {
	s, viewer, bytesPerPacket := simulcastViewer(t, "tile", "1080p")
	var trackID string
	poll.Until(t, "the camera's track", func() bool {
		for _, p := range s.participants(t, "tile") {
			if tracks := p["tracks"].([]any); p["identity"] == "encoder" && len(tracks) == 1 {
				trackID = tracks[0].(map[string]any)["id"].(string)
			}
		}
		return trackID != ""
	})
	poll.Until(t, "the top layer", func() bool { return bytesPerPacket() > 650 })

	viewer.send(map[string]any{"type": "track-settings", "track_id": trackID, "width": 160, "height": 90})
	poll.Until(t, "the lowest layer", func() bool { return bytesPerPacket() < 250 })

	viewer.send(map[string]any{"type": "track-settings", "track_id": "TR_none", "max_quality": "180p"})
	e := viewer.waitMsg("error", func(m map[string]any) bool { return m["request"] == "track-settings" })
	if e["code"] != "signaling_state" {
		t.Fatalf("error %v", e)
	}
	viewer.send(map[string]any{"type": "track-settings", "track_id": trackID})
	poll.Until(t, "the top layer again", func() bool { return bytesPerPacket() > 650 })

	viewer.send(map[string]any{"type": "track-settings", "track_id": trackID, "max_quality": "360p"})
	poll.Until(t, "the middle layer under 360p", func() bool {
		n := bytesPerPacket()
		return n > 300 && n < 600
	})
	viewer.send(map[string]any{"type": "track-settings", "track_id": trackID, "max_quality": "180p"})
	poll.Until(t, "the lowest layer under 180p", func() bool { return bytesPerPacket() < 250 })
	viewer.send(map[string]any{"type": "track-settings", "track_id": trackID})
	poll.Until(t, "the top layer without a maximum", func() bool { return bytesPerPacket() > 650 })
}

// FuzzTrackSettings: whatever a client sends, a track-settings message
// that decodes names a track and asks for sizes and a cap in range.
func FuzzTrackSettings(f *testing.F) {
	f.Add(`{"type":"track-settings","track_id":"TR_a","max_quality":"360p","width":320,"height":180}`)
	f.Add(`{"type":"track-settings","track_id":"TR_a","width":1e3,"height":-1}`)
	f.Add(`{"type":"track-settings","track_id":"TR_a","max_quality":"720p","paused":false}`)
	f.Fuzz(func(t *testing.T, msg string) {
		m, err := decodeClientMsg([]byte(msg))
		if err != nil || m.typ != msgTrackSettings {
			return
		}
		st := m.settings
		if m.track == "" || (st.Width == 0) != (st.Height == 0) || st.Width < 0 || st.Width > maxRenderSize || st.Height < 0 || st.Height > maxRenderSize {
			t.Fatalf("%s decoded as %+v", msg, m)
		}
		if _, ok := actors.QualityLines(fmt.Sprint(st.MaxLines, "p")); st.MaxLines != 0 && !ok {
			t.Fatalf("%s: max lines %d", msg, st.MaxLines)
		}
	})
}
