package client

import (
	"strings"
	"testing"
	"time"
)

// What a camera writes, a subscriber reads back: the layer, the counter,
// the send time, and whether the packet begins a keyframe; a damaged
// packet is refused.
func TestCameraPacket(t *testing.T) {
	cam, err := NewSimulcastCamera(CameraConfig{StreamID: "s", FPS: 30, MaxPayloadBytes: 1100, Layers: []Layer{
		{RID: "q", Width: 320, Height: 180, BitrateKbps: 150},
		{RID: "h", Width: 640, Height: 360, BitrateKbps: 500},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// 500 kbps at 30 fps is 2083 bytes a frame: two packets.
	if cam.PacketsPerFrame(0) != 1 || cam.PacketsPerFrame(1) != 2 {
		t.Errorf("packets per frame %d, %d", cam.PacketsPerFrame(0), cam.PacketsPerFrame(1))
	}
	now := time.Unix(1700000000, 123)
	for _, c := range []struct {
		first, key bool
	}{{true, true}, {true, false}, {false, false}} {
		p := cam.payload(make([]byte, 600), 1, c.first, 7, c.key, 42, now)
		got, ok := ReadCameraPacket(p)
		if !ok || got.Layer != 1 || got.Counter != 42 || !got.Sent.Equal(now) || got.FrameStart != c.first || got.Keyframe != (c.first && c.key) {
			t.Errorf("first %v key %v: read %+v, %v", c.first, c.key, got, ok)
		}
		p[len(p)-1]++
		if _, ok := ReadCameraPacket(p); ok {
			t.Errorf("first %v key %v: a damaged packet was read as whole", c.first, c.key)
		}
		if _, ok := ReadCameraPacket(p[:cameraDescriptor+2]); ok {
			t.Errorf("first %v key %v: a cut packet was read as whole", c.first, c.key)
		}
	}
	for _, bad := range []struct {
		cfg  CameraConfig
		want string
	}{
		{CameraConfig{FPS: 30, MaxPayloadBytes: 1100}, "layers"},
		{CameraConfig{FPS: 0, MaxPayloadBytes: 1100, Layers: []Layer{{RID: "q", Width: 1, Height: 1, BitrateKbps: 100}}}, "fps"},
		{CameraConfig{FPS: 30, MaxPayloadBytes: 20, Layers: []Layer{{RID: "q", Width: 1, Height: 1, BitrateKbps: 100}}}, "payload"},
		{CameraConfig{FPS: 30, MaxPayloadBytes: 1100, Layers: []Layer{{RID: "q", Width: 1, Height: 1, BitrateKbps: 100}, {RID: "q", Width: 2, Height: 2, BitrateKbps: 200}}}, "distinct"},
		{CameraConfig{FPS: 30, MaxPayloadBytes: 1100, Layers: []Layer{{RID: "q", Width: 0, Height: 1, BitrateKbps: 100}}}, "size"},
		{CameraConfig{FPS: 30, MaxPayloadBytes: 1100, Layers: []Layer{{RID: "q", Width: 1, Height: 1, BitrateKbps: 1}}}, "bytes a frame"},
	} {
		if _, err := NewSimulcastCamera(bad.cfg); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want an error about %s", bad.cfg, err, bad.want)
		}
	}
}

// A layers message pauses the layers nobody receives; one active again
// starts on a keyframe; one in neither list is left as it is.
func TestCameraLayers(t *testing.T) {
	cam, err := NewSimulcastCamera(CameraConfig{StreamID: "s", FPS: 30, MaxPayloadBytes: 1100, Layers: []Layer{
		{RID: "q", Width: 320, Height: 180, BitrateKbps: 150},
		{RID: "h", Width: 640, Height: 360, BitrateKbps: 500},
		{RID: "f", Width: 1280, Height: 720, BitrateKbps: 1500},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cam.setActive([]string{"q"}, []string{"h", "f"})
	if cam.Paused(0) || !cam.Paused(1) || !cam.Paused(2) {
		t.Fatalf("paused q, h, f: %v %v %v", cam.Paused(0), cam.Paused(1), cam.Paused(2))
	}
	cam.setActive([]string{"q", "h"}, nil)
	if cam.Paused(1) || !cam.Paused(2) || !cam.wantKey[1].Load() || cam.wantKey[0].Load() {
		t.Errorf("h active again: paused %v, keyframe asked %v; f paused %v; q keyframe asked %v",
			cam.Paused(1), cam.wantKey[1].Load(), cam.Paused(2), cam.wantKey[0].Load())
	}
}
