package scenarios

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBuiltinScenarios(t *testing.T) {
	want := []string{"audio-room", "join-storm", "many-rooms", "recording", "simulcast", "video-fanout"}
	if got := Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		s, err := Load(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Name != name {
			t.Errorf("%s.yaml names itself %q", name, s.Name)
		}
	}
	v, _ := Load("video-fanout")
	// 1.2 Mbps at 30 fps is 5000 bytes a frame: five packets of 1000.
	if got := [3]int{v.Video.PacketsPerFrame(), v.Video.PayloadBytes(), v.Video.PacketsPerSec()}; got != [3]int{5, 1000, 150} {
		t.Errorf("video-fanout packets per frame, payload, rate = %v", got)
	}
	if a, _ := Load("audio-room"); a.Audio.PacketsPerSec != 50 || a.Video != nil {
		t.Errorf("audio-room media: %+v %+v", a.Audio, a.Video)
	}
	if j, _ := Load("join-storm"); j.Join != JoinStorm {
		t.Errorf("join-storm joins %q", j.Join)
	}
	sim, _ := Load("simulcast")
	if sim.Simulcast == nil || len(sim.Simulcast.Layers) != 3 || sim.Video != nil || len(sim.Classes) != 5 {
		t.Errorf("simulcast media: %+v, classes %+v", sim.Simulcast, sim.Classes)
	}
}

// Subscribers are dealt to classes by share, every prefix mixed.
func TestClassOf(t *testing.T) {
	s := Scenario{Classes: []Class{{Name: "a", Share: 2}, {Name: "b"}, {Name: "c", Share: 1}}}
	var got []int
	for i := range 8 {
		got = append(got, s.ClassOf(i))
	}
	// a is due half the subscribers, b and c a quarter each.
	if want := []int{0, 1, 2, 0, 0, 1, 2, 0}; !slices.Equal(got, want) {
		t.Errorf("classes of the first 8: %v, want %v", got, want)
	}
	if c := (Scenario{}).ClassOf(3); c != 0 {
		t.Errorf("without classes, subscriber 3 is of class %d", c)
	}
}

func TestParse(t *testing.T) {
	const base = "name: x\nrooms: 1\npublishers: 1\nsubscribers: 2\nduration: 5s\nramp: {start: 1, step: 1, max: 3}\n"
	const simulcast = "simulcast: {fps: 30, max_payload_bytes: 1100, layers: [{rid: q, width: 320, height: 180, bitrate_kbps: 150}, {rid: h, width: 640, height: 360, bitrate_kbps: 500}]}\n"
	cases := []struct {
		name, yaml string
		wantErr    string // substring; "" means valid
	}{
		{"minimal video", base + "video: {bitrate_kbps: 1200, fps: 30, max_payload_bytes: 1100}\n", ""},
		{"audio and video", base + "audio: {packets_per_sec: 50, payload_bytes: 100}\nvideo: {bitrate_kbps: 500, fps: 15, max_payload_bytes: 1000}\n", ""},
		{"empty", "", "empty"},
		{"not yaml", "name: [x\n", "invalid scenario"},
		{"unknown key", base + "subscriber: 3\naudio: {packets_per_sec: 50, payload_bytes: 100}\n", "field subscriber not found"},
		{"unknown nested key", base + "audio: {packets_per_sec: 50, payload_bytes: 100, bitrate: 3}\n", "field bitrate not found"},
		{"wrong type", base + "audio: {packets_per_sec: fast, payload_bytes: 100}\n", "cannot unmarshal"},
		{"no media", base, "video: a scenario sends video, audio or both"},
		{"no name", strings.Replace(base, "name: x", "name: \"\"", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "name is required"},
		{"no rooms", strings.Replace(base, "rooms: 1", "rooms: 0", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "rooms: must be 1..1000"},
		{"no publisher", strings.Replace(base, "publishers: 1", "publishers: 0", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "publishers: must be at least 1"},
		{"too many", strings.Replace(base, "subscribers: 2", "subscribers: 5000", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "more than 2000 in all"},
		{"bad join", base + "join: whenever\naudio: {packets_per_sec: 50, payload_bytes: 100}\n", `join: must be "staggered" or "storm"`},
		{"bad duration", strings.Replace(base, "5s", "-1s", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "duration: must be positive"},
		{"bad ramp", strings.Replace(base, "step: 1", "step: 0", 1) + "audio: {packets_per_sec: 50, payload_bytes: 100}\n", "ramp:"},
		{"jumbo packets", base + "video: {bitrate_kbps: 1200, fps: 30, max_payload_bytes: 9000}\n", "video.max_payload_bytes"},
		{"zero fps", base + "video: {bitrate_kbps: 1200, fps: 0, max_payload_bytes: 1100}\n", "video.fps"},
		{"tiny frames", base + "video: {bitrate_kbps: 1, fps: 120, max_payload_bytes: 1100}\n", "bytes a frame"},
		{"tiny audio", base + "audio: {packets_per_sec: 50, payload_bytes: 4}\n", "audio.payload_bytes"},
		{"simulcast", base + simulcast + "classes: [{name: a}, {name: b, share: 2, width: 320, height: 180, cap_kbps: 300, cut: {at: 1s, cap_kbps: 100, end: 2s}}]\n", ""},
		{"simulcast and video", base + simulcast + "video: {bitrate_kbps: 500, fps: 15, max_payload_bytes: 1000}\n", "not both"},
		{"classes without simulcast", base + "audio: {packets_per_sec: 50, payload_bytes: 100}\nclasses: [{name: a}]\n", "need a simulcast camera"},
		{"layers out of order", base + strings.Replace(simulcast, "bitrate_kbps: 500", "bitrate_kbps: 100", 1), "lowest first"},
		{"same rid", base + strings.Replace(simulcast, "rid: h", "rid: q", 1), ".rid"},
		{"no layers", base + "simulcast: {fps: 30, max_payload_bytes: 1100, layers: []}\n", "simulcast.layers"},
		{"tiny layer", base + strings.Replace(simulcast, "bitrate_kbps: 150", "bitrate_kbps: 1", 1), "bytes a frame"},
		{"same class", base + simulcast + "classes: [{name: a}, {name: a}]\n", "classes[1].name"},
		{"width alone", base + simulcast + "classes: [{name: a, width: 320}]\n", "width and height go together"},
		{"cut after the window", base + simulcast + "classes: [{name: a, cut: {at: 9s, cap_kbps: 100}}]\n", "cut.at"},
		{"cut ends before", base + simulcast + "classes: [{name: a, cut: {at: 2s, cap_kbps: 100, end: 1s}}]\n", "cut.end"},
		{"cut to nothing", base + simulcast + "classes: [{name: a, cut: {at: 2s, cap_kbps: 0}}]\n", "cut.cap_kbps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("test.yaml", []byte(c.yaml))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if s.Join != JoinStaggered {
					t.Errorf("join defaults to %q", s.Join)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", s)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Parse error %q: want ErrInvalid mentioning %q", err, c.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(file, []byte("name: mine\nrooms: 2\npublishers: 2\nduration: 3s\nramp: {start: 0, step: 1, max: 1}\naudio: {packets_per_sec: 50, payload_bytes: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Load(file); err != nil || s.Rooms != 2 || s.Duration != 3*time.Second {
		t.Errorf("Load(file) = %+v, %v", s, err)
	}
	for _, name := range []string{"nope", "../scenarios/video-fanout", filepath.Join(dir, "missing.yaml")} {
		if _, err := Load(name); !errors.Is(err, ErrUnknown) {
			t.Errorf("Load(%q) = %v, want ErrUnknown", name, err)
		}
	}
}

func TestWith(t *testing.T) {
	s, err := Load("video-fanout")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		o       Overrides
		want    [4]int // rooms, publishers, subscribers, seconds
		wantErr bool
	}{
		{"none", Overrides{}, [4]int{1, 1, 10, 10}, false},
		{"counts and duration", Overrides{Rooms: 2, Subscribers: 50, Duration: 3 * time.Second}, [4]int{2, 1, 50, 3}, false},
		{"zero subscribers", Overrides{SubscribersSet: true}, [4]int{1, 1, 0, 10}, false},
		{"negative", Overrides{Subscribers: -1}, [4]int{}, true},
		{"too many", Overrides{Subscribers: 5000}, [4]int{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.With(c.o)
			if c.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("With(%+v) = %v, want ErrInvalid", c.o, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := [4]int{got.Rooms, got.Publishers, got.Subscribers, int(got.Duration / time.Second)}; g != c.want {
				t.Errorf("With(%+v) = %v, want %v", c.o, g, c.want)
			}
		})
	}
	for _, c := range []struct {
		ramp Ramp
		want []int
	}{
		{Ramp{Start: 10, Step: 20, Max: 50}, []int{10, 30, 50}},
		// The count asked for is the last step, even off the grid.
		{Ramp{Start: 2, Step: 4, Max: 8}, []int{2, 6, 8}},
		{Ramp{Start: 6, Step: 10, Max: 6}, []int{6}},
	} {
		if got := c.ramp.Steps(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: steps %v, want %v", c.ramp, got, c.want)
		}
	}
}
