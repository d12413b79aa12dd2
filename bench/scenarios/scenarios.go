package scenarios

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var builtin embed.FS

// Join is how the participants of a step enter their room.
type Join string

const (
	// JoinStaggered joins a few participants at a time, as people trickle
	// into a meeting.
	JoinStaggered Join = "staggered"
	// JoinStorm joins every subscriber of the step at the same moment.
	JoinStorm Join = "storm"
)

// Scenario is one benchmark scenario. Counts are per room.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Rooms is how many rooms run side by side. At least 1.
	Rooms int `yaml:"rooms"`
	// Publishers send the scenario's media and receive every other
	// publisher of their room.
	Publishers int `yaml:"publishers"`
	// Subscribers only receive: every track of their room.
	Subscribers int `yaml:"subscribers"`
	// Video, when set, is sent by every publisher.
	Video *Video `yaml:"video"`
	// Audio, when set, is sent by every publisher.
	Audio *Audio `yaml:"audio"`
	// Simulcast, when set, is a camera in layers sent by every publisher
	// (in place of Video).
	Simulcast *Simulcast `yaml:"simulcast"`
	// Classes, with Simulcast, are the kinds of subscriber, dealt by
	// share (ClassOf); none means every subscriber shows the video at
	// full size on an open link.
	Classes []Class `yaml:"classes"`
	// Join defaults to staggered.
	Join Join `yaml:"join"`
	// Duration is how long each step is measured, once everyone receives.
	Duration time.Duration `yaml:"duration"`
	// Ramp is the subscriber counts that --ramp steps through.
	Ramp Ramp `yaml:"ramp"`
	// Record records each room while it forwards: its rooms are created
	// with recording enabled, and a recording of each (a file per
	// participant) starts once its publishers have joined.
	Record bool `yaml:"record"`
}

// Video is synthetic VP8 at a constant bit rate, each frame cut into
// packets of at most MaxPayloadBytes.
type Video struct {
	BitrateKbps     int `yaml:"bitrate_kbps"`
	FPS             int `yaml:"fps"`
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
}

// PacketsPerFrame is how many packets one frame takes.
func (v Video) PacketsPerFrame() int {
	return int(math.Ceil(float64(v.frameBytes()) / float64(v.MaxPayloadBytes)))
}

// PayloadBytes is the payload of each packet: the frame split evenly.
func (v Video) PayloadBytes() int {
	return int(math.Ceil(float64(v.frameBytes()) / float64(v.PacketsPerFrame())))
}

// PacketsPerSec is the packet rate of one video track.
func (v Video) PacketsPerSec() int { return v.FPS * v.PacketsPerFrame() }

func (v Video) frameBytes() int { return v.BitrateKbps * 1000 / 8 / v.FPS }

// Audio is synthetic Opus: fixed-size packets at a fixed rate.
type Audio struct {
	PacketsPerSec int `yaml:"packets_per_sec"`
	PayloadBytes  int `yaml:"payload_bytes"`
}

// Ramp is the subscribers per room of the steps of --ramp: Start, then
// Start+Step, ... and Max last.
type Ramp struct {
	Start int `yaml:"start"`
	Step  int `yaml:"step"`
	Max   int `yaml:"max"`
}

// Steps lists the subscriber counts of the ramp. The last is Max, even off
// the grid of steps: it is the count asked for.
func (r Ramp) Steps() []int {
	var out []int
	for n := r.Start; n <= r.Max; n += r.Step {
		out = append(out, n)
	}
	if len(out) > 0 && out[len(out)-1] < r.Max {
		out = append(out, r.Max)
	}
	return out
}

// Limits of the values a scenario may take; they keep a typo from asking
// for a million peer connections.
const (
	maxRooms        = 1000
	maxParticipants = 2000
	maxPayload      = 1200 // fits a 1500-byte MTU with SRTP and headers
	minPayload      = 16   // the synthetic body's counter and send time
	maxBitrateKbps  = 50000
	maxRate         = 1000
)

// Validate reports the first field that is out of range.
func (s Scenario) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w %q: %s: %s", ErrInvalid, s.Name, field, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Name == "":
		return fmt.Errorf("%w: name is required", ErrInvalid)
	case s.Rooms < 1 || s.Rooms > maxRooms:
		return bad("rooms", "must be 1..%d, not %d", maxRooms, s.Rooms)
	case s.Publishers < 1:
		return bad("publishers", "must be at least 1, not %d", s.Publishers)
	case s.Subscribers < 0:
		return bad("subscribers", "must not be negative")
	case s.Rooms*(s.Publishers+s.Subscribers) > maxParticipants:
		return bad("rooms", "%d rooms of %d participants: more than %d in all", s.Rooms, s.Publishers+s.Subscribers, maxParticipants)
	case s.Video == nil && s.Audio == nil && s.Simulcast == nil:
		return bad("video", "a scenario sends video, audio or both")
	case s.Join != JoinStaggered && s.Join != JoinStorm:
		return bad("join", "must be %q or %q, not %q", JoinStaggered, JoinStorm, s.Join)
	case s.Duration <= 0:
		return bad("duration", "must be positive")
	case s.Ramp.Start < 0 || s.Ramp.Step < 1 || s.Ramp.Max < s.Ramp.Start:
		return bad("ramp", "want 0 <= start <= max and step >= 1, not %+v", s.Ramp)
	case s.Rooms*(s.Publishers+s.Ramp.Max) > maxParticipants:
		return bad("ramp.max", "%d rooms of %d participants: more than %d in all", s.Rooms, s.Publishers+s.Ramp.Max, maxParticipants)
	}
	if v := s.Video; v != nil {
		switch {
		case v.FPS < 1 || v.FPS > 120:
			return bad("video.fps", "must be 1..120, not %d", v.FPS)
		case v.MaxPayloadBytes < minPayload || v.MaxPayloadBytes > maxPayload:
			return bad("video.max_payload_bytes", "must be %d..%d, not %d", minPayload, maxPayload, v.MaxPayloadBytes)
		case v.BitrateKbps < 1 || v.BitrateKbps > maxBitrateKbps:
			return bad("video.bitrate_kbps", "must be 1..%d, not %d", maxBitrateKbps, v.BitrateKbps)
		case v.frameBytes() < minPayload:
			return bad("video.bitrate_kbps", "%d kbps at %d fps is less than %d bytes a frame", v.BitrateKbps, v.FPS, minPayload)
		case v.PacketsPerSec() > maxRate:
			return bad("video.bitrate_kbps", "%d packets/s: more than %d", v.PacketsPerSec(), maxRate)
		}
	}
	if err := s.validateSimulcast(bad); err != nil {
		return err
	}
	if a := s.Audio; a != nil {
		switch {
		case a.PacketsPerSec < 1 || a.PacketsPerSec > maxRate:
			return bad("audio.packets_per_sec", "must be 1..%d, not %d", maxRate, a.PacketsPerSec)
		case a.PayloadBytes < minPayload || a.PayloadBytes > maxPayload:
			return bad("audio.payload_bytes", "must be %d..%d, not %d", minPayload, maxPayload, a.PayloadBytes)
		}
	}
	return nil
}

// Names lists the built-in scenarios.
func Names() []string {
	entries, _ := fs.ReadDir(builtin, ".")
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	slices.Sort(out)
	return out
}

// Load returns a built-in scenario by name, or reads a YAML file when
// nameOrPath ends in .yaml or .yml.
func Load(nameOrPath string) (Scenario, error) {
	ext := path.Ext(nameOrPath)
	if ext == ".yaml" || ext == ".yml" {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return Scenario{}, fmt.Errorf("%w: %w", ErrUnknown, err)
		}
		return Parse(nameOrPath, data)
	}
	data, err := builtin.ReadFile(nameOrPath + ".yaml")
	if err != nil || strings.ContainsAny(nameOrPath, "/\\") {
		return Scenario{}, fmt.Errorf("%w %q (built-in: %s)", ErrUnknown, nameOrPath, strings.Join(Names(), ", "))
	}
	return Parse(nameOrPath+".yaml", data)
}

// Parse decodes and validates one scenario. Unknown keys are errors: a
// misspelt count silently ignored would measure something else.
func Parse(source string, data []byte) (Scenario, error) {
	s := Scenario{Join: JoinStaggered}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Scenario{}, fmt.Errorf("%w: %s: empty", ErrInvalid, source)
		}
		return Scenario{}, fmt.Errorf("%w: %s: %s", ErrInvalid, source, oneLine(err.Error()))
	}
	if err := s.Validate(); err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", source, err)
	}
	return s, nil
}

// Overrides are the command line's changes to a scenario; zero fields
// keep the scenario's value.
type Overrides struct {
	Rooms, Publishers, Subscribers int
	Duration                       time.Duration
	// SubscribersSet makes a Subscribers of 0 count (a fan-out of none).
	SubscribersSet bool
}

// With returns s with the overrides applied, validated.
func (s Scenario) With(o Overrides) (Scenario, error) {
	if o.Rooms != 0 {
		s.Rooms = o.Rooms
	}
	if o.Publishers != 0 {
		s.Publishers = o.Publishers
	}
	if o.Subscribers != 0 || o.SubscribersSet {
		s.Subscribers = o.Subscribers
	}
	if o.Duration != 0 {
		s.Duration = o.Duration
	}
	return s, s.Validate()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
