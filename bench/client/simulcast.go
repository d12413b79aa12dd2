package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Layer is one encoding of a simulcast camera.
type Layer struct {
	// RID names the encoding in the offer and on each packet.
	RID string
	// Width and Height are written in the layer's keyframes, where the
	// server reads the layer's size.
	Width, Height int
	// BitrateKbps is what the layer sends: each frame is BitrateKbps/FPS
	// worth of bytes.
	BitrateKbps int
}

// CameraConfig configures a SimulcastCamera.
type CameraConfig struct {
	// StreamID names the camera's stream (the server names it anew).
	StreamID string
	// Layers, lowest first; one to four.
	Layers []Layer
	// FPS is the frame rate of every layer.
	FPS int
	// MaxPayloadBytes splits a frame into packets of at most this
	// payload, descriptor and frame header included.
	MaxPayloadBytes int
	// KeyframeEvery makes every n-th frame of each layer a keyframe,
	// besides those asked for with a PLI; zero is 10 s of frames.
	KeyframeEvery int
}

// The synthetic simulcast payload. After the VP8 payload descriptor
// (with a 15-bit picture id, which the server rewrites) and, on a
// frame's first packet, a VP8 frame header (a keyframe's carries the
// layer's size), comes a body the server leaves alone: the layer, the
// layer's packet counter, the send time, and a filler that depends on
// the counter, so that a subscriber tells from each packet which layer
// it came from, whether it is whole, and how late it is.
const (
	cameraDescriptor  = 4  // X, I, and a 15-bit picture id
	cameraKeyHeader   = 10 // frame tag, start code, width and height
	cameraDeltaHeader = 3  // frame tag
	cameraBody        = 13 // layer, counter, send time
	// minCameraPayload fits a keyframe's first packet's headers and body.
	minCameraPayload = cameraDescriptor + cameraKeyHeader + cameraBody
)

// SimulcastCamera sends a synthetic VP8 camera in rid layers, as a
// browser's simulcast does: the layers share one sender (one media
// section, a=simulcast with a rid each), each packet names its mid and
// rid in header extensions, and a PLI to a layer's SSRC makes that
// layer's next frame a keyframe. It can be published on one connection
// after another (a Session's reconnections): the packets follow the last.
type SimulcastCamera struct {
	cfg    CameraConfig
	tracks []*webrtc.TrackLocalStaticRTP
	frame  []int // bytes of one frame, by layer

	wantKey []atomic.Bool
	paused  []atomic.Bool   // layers not sent: nobody receives them
	sent    []atomic.Uint32 // packets written, by layer
	plis    []atomic.Int32

	mu    sync.Mutex // guards the following
	midID uint8
	ridID uint8
	mid   string
}

// NewSimulcastCamera checks cfg and makes the camera's tracks.
func NewSimulcastCamera(cfg CameraConfig) (*SimulcastCamera, error) {
	if n := len(cfg.Layers); n < 1 || n > 4 {
		return nil, fmt.Errorf("client: a camera of %d layers: want 1 to 4", n)
	}
	if cfg.FPS < 1 || cfg.FPS > 120 {
		return nil, fmt.Errorf("client: camera fps %d: want 1 to 120", cfg.FPS)
	}
	// A frame split evenly takes at least half the maximum a packet.
	if cfg.MaxPayloadBytes < 2*minCameraPayload || cfg.MaxPayloadBytes > 1200 {
		return nil, fmt.Errorf("client: camera payload of %d bytes: want %d to 1200", cfg.MaxPayloadBytes, 2*minCameraPayload)
	}
	if cfg.KeyframeEvery <= 0 {
		cfg.KeyframeEvery = 10 * cfg.FPS
	}
	c := &SimulcastCamera{
		cfg: cfg, wantKey: make([]atomic.Bool, len(cfg.Layers)), paused: make([]atomic.Bool, len(cfg.Layers)),
		sent: make([]atomic.Uint32, len(cfg.Layers)), plis: make([]atomic.Int32, len(cfg.Layers)),
	}
	seen := map[string]bool{}
	for _, l := range cfg.Layers {
		if l.RID == "" || seen[l.RID] {
			return nil, fmt.Errorf("client: camera layer rid %q: want distinct, non-empty rids", l.RID)
		}
		seen[l.RID] = true
		if l.Width < 1 || l.Height < 1 || l.Width > 0x3fff || l.Height > 0x3fff {
			return nil, fmt.Errorf("client: camera layer %s: size %dx%d out of range", l.RID, l.Width, l.Height)
		}
		frame := l.BitrateKbps * 1000 / 8 / cfg.FPS
		if frame < minCameraPayload {
			return nil, fmt.Errorf("client: camera layer %s: %d kbps at %d fps is less than %d bytes a frame", l.RID, l.BitrateKbps, cfg.FPS, minCameraPayload)
		}
		c.frame = append(c.frame, frame)
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			"camera", cfg.StreamID, webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			return nil, fmt.Errorf("client: camera track: %w", err)
		}
		c.tracks = append(c.tracks, tr)
	}
	return c, nil
}

// PacketsPerFrame is how many packets a frame of layer i takes.
func (c *SimulcastCamera) PacketsPerFrame(i int) int {
	return int(math.Ceil(float64(c.frame[i]) / float64(c.cfg.MaxPayloadBytes)))
}

// Sent is how many packets layer i has written.
func (c *SimulcastCamera) Sent(i int) uint32 { return c.sent[i].Load() }

// PLIs is how many keyframe requests layer i was sent.
func (c *SimulcastCamera) PLIs(i int) int32 { return c.plis[i].Load() }

// Paused is whether layer i is paused: the server said nobody receives it.
func (c *SimulcastCamera) Paused(i int) bool { return c.paused[i].Load() }

// setActive takes a layers message: the layers named paused stop, those
// named active go on, or start again on a keyframe, as an encoding turned
// back on does. A layer in neither list is left as it is.
func (c *SimulcastCamera) setActive(active, paused []string) {
	for i, l := range c.cfg.Layers {
		switch {
		case slices.Contains(paused, l.RID):
			c.paused[i].Store(true)
		case slices.Contains(active, l.RID):
			if c.paused[i].Swap(false) {
				c.wantKey[i].Store(true)
			}
		}
	}
}

// PublishSimulcast offers cam as one send-only section with a rid per
// layer, waits for the server's answer, and serves the layers' keyframe
// requests until the connection ends.
func (c *Client) PublishSimulcast(ctx context.Context, cam *SimulcastCamera) error {
	var tc *webrtc.RTPTransceiver
	err := c.offerWith(ctx, func() error {
		var err error
		if tc, err = c.pc.AddTransceiverFromTrack(cam.tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			return fmt.Errorf("client: add camera: %w", err)
		}
		// What the camera wrote before the connection was up went
		// nowhere: as a browser's encoder starts, every layer begins on a
		// keyframe once it is, which also tells the server each layer's
		// size.
		tc.Sender().Transport().OnStateChange(func(s webrtc.DTLSTransportState) {
			if s == webrtc.DTLSTransportStateConnected {
				for i := range cam.wantKey {
					cam.wantKey[i].Store(true)
				}
			}
		})
		for _, t := range cam.tracks[1:] {
			if err := tc.Sender().AddEncoding(t); err != nil {
				return fmt.Errorf("client: add camera layer: %w", err)
			}
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	if err := cam.negotiated(tc); err != nil {
		return err
	}
	c.mu.Lock()
	if c.cameras == nil {
		c.cameras = map[string]*SimulcastCamera{}
	}
	c.cameras[tc.Mid()] = cam
	c.mu.Unlock()
	for i, l := range cam.cfg.Layers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			cam.serveKeyframeRequests(tc.Sender(), i, l.RID)
		}()
	}
	return nil
}

// negotiated takes the mid and the header extension ids that tc's
// connection agreed on.
func (c *SimulcastCamera) negotiated(tc *webrtc.RTPTransceiver) error {
	var midID, ridID uint8
	for _, x := range tc.Sender().GetParameters().HeaderExtensions {
		switch x.URI {
		case sdp.SDESMidURI:
			midID = uint8(x.ID)
		case sdp.SDESRTPStreamIDURI:
			ridID = uint8(x.ID)
		}
	}
	if midID == 0 || ridID == 0 || tc.Mid() == "" {
		return fmt.Errorf("%w: mid and rid header extensions not negotiated (ids %d, %d, mid %q)", ErrServer, midID, ridID, tc.Mid())
	}
	c.mu.Lock()
	c.midID, c.ridID, c.mid = midID, ridID, tc.Mid()
	c.mu.Unlock()
	return nil
}

func (c *SimulcastCamera) serveKeyframeRequests(s *webrtc.RTPSender, i int, rid string) {
	for {
		pkts, _, err := s.ReadSimulcastRTCP(rid)
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.plis[i].Add(1)
				c.wantKey[i].Store(true)
			}
		}
	}
}

// Run sends a frame of every layer each 1/FPS until ctx ends. Call it
// once the camera is published; it goes on across re-publications.
func (c *SimulcastCamera) Run(ctx context.Context) error {
	c.mu.Lock()
	published := c.mid != ""
	c.mu.Unlock()
	if !published {
		return errors.New("client: camera run before it was published")
	}
	w := cameraWriter{cam: c, seq: make([]uint16, len(c.tracks)), pic: make([]uint16, len(c.tracks))}
	tick := time.NewTicker(time.Second / time.Duration(c.cfg.FPS))
	defer tick.Stop()
	for n := 0; ; n++ {
		for i := range c.tracks {
			if c.paused[i].Load() {
				continue
			}
			key := n%c.cfg.KeyframeEvery == 0 || c.wantKey[i].Swap(false)
			if err := w.frame(i, uint32(n), key); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// cameraWriter is Run's state: each layer's RTP numbering.
type cameraWriter struct {
	cam *SimulcastCamera
	seq []uint16
	pic []uint16
	pkt rtp.Packet
	buf []byte
}

// frame writes frame n of layer i.
func (w *cameraWriter) frame(i int, n uint32, key bool) error {
	c := w.cam
	c.mu.Lock()
	midID, ridID, mid := c.midID, c.ridID, c.mid
	c.mu.Unlock()
	parts := c.PacketsPerFrame(i)
	size := (c.frame[i] + parts - 1) / parts
	if w.buf == nil {
		w.buf = make([]byte, c.cfg.MaxPayloadBytes)
	}
	w.pic[i]++
	for part := range parts {
		counter := c.sent[i].Load()
		p := c.payload(w.buf[:size], i, part == 0, w.pic[i], key, counter, time.Now())
		w.pkt.Header = rtp.Header{
			Version: 2, Marker: part == parts-1,
			SequenceNumber: w.seq[i], Timestamp: n * uint32(90000/c.cfg.FPS),
		}
		w.seq[i]++
		if err := w.pkt.Header.SetExtension(midID, []byte(mid)); err != nil {
			return err
		}
		if err := w.pkt.Header.SetExtension(ridID, []byte(c.cfg.Layers[i].RID)); err != nil {
			return err
		}
		w.pkt.Payload = p
		c.sent[i].Store(counter + 1)
		if err := c.tracks[i].WriteRTP(&w.pkt); err != nil {
			return err
		}
	}
	return nil
}

// payload fills p with a packet of layer i: the first of its frame or a
// later one, of a keyframe or not.
func (c *SimulcastCamera) payload(p []byte, i int, first bool, pic uint16, key bool, counter uint32, now time.Time) []byte {
	p[0], p[1] = 0x80, 0x80 // X; I
	if first {
		p[0] |= 0x10 // S, partition 0: a frame starts
	}
	binary.BigEndian.PutUint16(p[2:], 0x8000|pic&0x7fff)
	body := p[cameraDescriptor:]
	if first {
		if key {
			l := c.cfg.Layers[i]
			copy(body, []byte{0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a})
			binary.LittleEndian.PutUint16(body[6:], uint16(l.Width))
			binary.LittleEndian.PutUint16(body[8:], uint16(l.Height))
			body = body[cameraKeyHeader:]
		} else {
			copy(body, []byte{0x01, 0x00, 0x00})
			body = body[cameraDeltaHeader:]
		}
	}
	fillCameraBody(body, i, counter, now)
	return p
}

func fillCameraBody(b []byte, layer int, counter uint32, now time.Time) {
	b[0] = byte(layer)
	binary.BigEndian.PutUint32(b[1:], counter)
	binary.BigEndian.PutUint64(b[5:], uint64(now.UnixNano()))
	for j := cameraBody; j < len(b); j++ {
		b[j] = byte(counter*13 + uint32(j) + uint32(layer))
	}
}

// CameraPacket is what a subscriber reads from a SimulcastCamera's
// packet, as the server forwarded it.
type CameraPacket struct {
	// Layer is the index of the layer it came from, Counter its number
	// among that layer's packets.
	Layer   int
	Counter uint32
	// Sent is when the camera wrote it.
	Sent time.Time
	// FrameStart is whether it begins a frame, Keyframe whether that
	// frame is a keyframe.
	FrameStart, Keyframe bool
}

// ReadCameraPacket reads a forwarded camera packet's VP8 payload. It
// reports false for a payload that is not whole: cut, or not a camera's.
func ReadCameraPacket(payload []byte) (CameraPacket, bool) {
	var vp8 codecs.VP8Packet
	body, err := vp8.Unmarshal(payload)
	if err != nil {
		return CameraPacket{}, false
	}
	var out CameraPacket
	out.FrameStart = vp8.S == 1 && vp8.PID == 0
	if out.FrameStart {
		if len(body) < cameraDeltaHeader {
			return CameraPacket{}, false
		}
		out.Keyframe = body[0]&0x01 == 0
		if out.Keyframe {
			if len(body) < cameraKeyHeader {
				return CameraPacket{}, false
			}
			body = body[cameraKeyHeader:]
		} else {
			body = body[cameraDeltaHeader:]
		}
	}
	if len(body) < cameraBody {
		return CameraPacket{}, false
	}
	out.Layer = int(body[0])
	out.Counter = binary.BigEndian.Uint32(body[1:])
	out.Sent = time.Unix(0, int64(binary.BigEndian.Uint64(body[5:])))
	for j := cameraBody; j < len(body); j++ {
		if body[j] != byte(out.Counter*13+uint32(j)+uint32(out.Layer)) {
			return CameraPacket{}, false
		}
	}
	return out, true
}
