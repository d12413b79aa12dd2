package scenarios

import (
	"fmt"
	"time"
)

// Simulcast is a synthetic VP8 camera in rid layers, lowest first, as a
// browser sends it: every publisher sends one, in place of Video.
type Simulcast struct {
	FPS             int     `yaml:"fps"`
	MaxPayloadBytes int     `yaml:"max_payload_bytes"`
	Layers          []Layer `yaml:"layers"`
}

// Layer is one encoding of a simulcast camera.
type Layer struct {
	RID         string `yaml:"rid"`
	Width       int    `yaml:"width"`
	Height      int    `yaml:"height"`
	BitrateKbps int    `yaml:"bitrate_kbps"`
}

// Class is a kind of subscriber: the size it shows video at, the rate its
// link carries, and a cut of that rate partway through each step.
// Subscribers are dealt to the classes in proportion to their shares.
type Class struct {
	Name string `yaml:"name"`
	// Share is the class's weight among the subscribers; 1 when zero.
	Share int `yaml:"share"`
	// Width and Height, when set, are asked for with track-settings.
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// CapKbps, when set, is the rate of the subscriber's link: a token
	// bucket on its socket drops the RTP beyond it.
	CapKbps int `yaml:"cap_kbps"`
	// Cut, when set, changes the cap partway through each step's window.
	Cut *Cut `yaml:"cut"`
}

// Cut narrows a class's link At into each measuring window to CapKbps,
// and, if End is set, gives it back its own cap End into the window.
type Cut struct {
	At      time.Duration `yaml:"at"`
	CapKbps int           `yaml:"cap_kbps"`
	End     time.Duration `yaml:"end"`
}

// Capped is whether the class's link is ever narrowed: its losses are
// the shaping's, not the server's.
func (c Class) Capped() bool { return c.CapKbps > 0 || c.Cut != nil }

// ClassOf deals subscriber i (0-based, in join order) to a class: the
// class furthest behind its share of the first i+1 subscribers, so that
// every prefix of the subscribers is mixed as the shares say. Without
// classes it is 0: every subscriber alike.
func (s Scenario) ClassOf(i int) int {
	if len(s.Classes) == 0 {
		return 0
	}
	total := 0
	for _, c := range s.Classes {
		total += max(c.Share, 1)
	}
	counts := make([]int, len(s.Classes))
	pick := 0
	for n := 0; n <= i; n++ {
		pick = 0
		best := -1.0
		for k, c := range s.Classes {
			due := float64((n+1)*max(c.Share, 1))/float64(total) - float64(counts[k])
			if due > best {
				best, pick = due, k
			}
		}
		counts[pick]++
	}
	return pick
}

// maxLayers bounds a simulcast camera, as browsers send at most four.
const maxLayers = 4

func (s Scenario) validateSimulcast(bad func(field, format string, args ...any) error) error {
	v := s.Simulcast
	if v == nil {
		if len(s.Classes) > 0 {
			return bad("classes", "subscriber classes need a simulcast camera")
		}
		return nil
	}
	switch {
	case s.Video != nil:
		return bad("simulcast", "a publisher sends video or a simulcast camera, not both")
	case v.FPS < 1 || v.FPS > 120:
		return bad("simulcast.fps", "must be 1..120, not %d", v.FPS)
	case v.MaxPayloadBytes < 64 || v.MaxPayloadBytes > maxPayload:
		return bad("simulcast.max_payload_bytes", "must be 64..%d, not %d", maxPayload, v.MaxPayloadBytes)
	case len(v.Layers) < 1 || len(v.Layers) > maxLayers:
		return bad("simulcast.layers", "must be 1..%d layers, not %d", maxLayers, len(v.Layers))
	}
	rids := map[string]bool{}
	for i, l := range v.Layers {
		field := fmt.Sprintf("simulcast.layers[%d]", i)
		switch {
		case l.RID == "" || len(l.RID) > 16 || rids[l.RID]:
			return bad(field+".rid", "must be 1..16 characters and distinct, not %q", l.RID)
		case l.Width < 1 || l.Height < 1 || l.Width > 16383 || l.Height > 16383:
			return bad(field, "size %dx%d: must be 1..16383 each way", l.Width, l.Height)
		case l.BitrateKbps*1000/8/v.FPS < 32:
			return bad(field+".bitrate_kbps", "%d kbps at %d fps is less than 32 bytes a frame", l.BitrateKbps, v.FPS)
		case l.BitrateKbps > maxBitrateKbps:
			return bad(field+".bitrate_kbps", "must be at most %d, not %d", maxBitrateKbps, l.BitrateKbps)
		case i > 0 && (l.BitrateKbps <= v.Layers[i-1].BitrateKbps || l.Width*l.Height <= v.Layers[i-1].Width*v.Layers[i-1].Height):
			return bad(field, "layers go lowest first: each larger and faster than the one before")
		}
		if pps := v.FPS * ((l.BitrateKbps*1000/8/v.FPS + v.MaxPayloadBytes - 1) / v.MaxPayloadBytes); pps > maxRate {
			return bad(field+".bitrate_kbps", "%d packets/s: more than %d", pps, maxRate)
		}
		rids[l.RID] = true
	}
	names := map[string]bool{}
	for i, c := range s.Classes {
		field := fmt.Sprintf("classes[%d]", i)
		switch {
		case c.Name == "" || names[c.Name]:
			return bad(field+".name", "must be set and distinct, not %q", c.Name)
		case c.Share < 0 || c.Share > 1000:
			return bad(field+".share", "must be 0..1000, not %d", c.Share)
		case (c.Width == 0) != (c.Height == 0) || c.Width < 0 || c.Height < 0 || c.Width > 16384 || c.Height > 16384:
			return bad(field, "width and height go together, 1..16384, not %dx%d", c.Width, c.Height)
		case c.CapKbps < 0 || c.CapKbps > maxBitrateKbps:
			return bad(field+".cap_kbps", "must be 0..%d, not %d", maxBitrateKbps, c.CapKbps)
		}
		names[c.Name] = true
		if cut := c.Cut; cut != nil {
			switch {
			case cut.At <= 0 || cut.At >= s.Duration:
				return bad(field+".cut.at", "must be inside the window (0 to %v), not %v", s.Duration, cut.At)
			case cut.CapKbps < 1 || cut.CapKbps > maxBitrateKbps:
				return bad(field+".cut.cap_kbps", "must be 1..%d, not %d", maxBitrateKbps, cut.CapKbps)
			case cut.End != 0 && (cut.End <= cut.At || cut.End >= s.Duration):
				return bad(field+".cut.end", "must be after the cut and inside the window, not %v", cut.End)
			}
		}
	}
	return nil
}
