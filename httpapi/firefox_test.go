package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/firefoxtest"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/internal/promtest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// The Firefox interop suite: Firefox ESR (headless, with its fake camera
// and microphone) joins rooms through the web page, driven by
// internal/firefoxtest's Front. It runs with TROUPE_FIREFOX_TESTS=1 (CI
// sets it and installs firefox-esr); the variable set and Firefox missing
// is a failure. Firefox negotiates differently from Chromium: VP8 first,
// VP9 and AV1 next and no H.264 without its OpenH264 plug-in, its own
// header extension ids, an RTX stream per simulcast layer, and the
// simulcast layers in the order the page gave them.

// firefoxPage opens path of s's server in a Firefox of its own.
func (s *stack) firefoxPage(t *testing.T, path string) *firefoxtest.Page {
	t.Helper()
	return firefoxtest.NewFront(t, s.srv.URL).Open(t, path)
}

// mediaSection returns the first m= section of kind ("audio", "video") of
// sdp, "" if there is none.
func mediaSection(sdp, kind string) string {
	_, rest, ok := strings.Cut(sdp, "\r\nm="+kind+" ")
	if !ok {
		return ""
	}
	section, _, _ := strings.Cut(rest, "\r\nm=")
	return "m=" + kind + " " + section
}

// sending reports whether r shows the page joined, connected, and sending
// audio and video.
func sending(r firefoxtest.Report) bool {
	v, a := firefoxtest.Streams(r.Outbound, "video"), firefoxtest.Streams(r.Outbound, "audio")
	return r.State == "joined" && r.Connection == "connected" && len(v) > 0 && v[0].Packets > 0 && len(a) > 0 && a[0].Packets > 0
}

// checkFirefoxAnswer checks the server's answer to Firefox's offer, as the
// page holds it: VP8 first for the camera, Opus for the microphone, and
// transport-wide congestion control under the id Firefox gave it.
func checkFirefoxAnswer(t *testing.T, r firefoxtest.Report) {
	t.Helper()
	offer, answer := mediaSection(r.LocalSDP, "video"), mediaSection(r.RemoteSDP, "video")
	t.Logf("the server's answer to Firefox's camera:\n%s", answer)
	const twcc = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
	if id := extmapID(offer, twcc); id == "" || extmapID(answer, twcc) != id {
		t.Errorf("transport-cc is extmap %q in Firefox's offer, %q in the answer", id, extmapID(answer, twcc))
	}
	if codec := firstCodec(answer); codec != "VP8/90000" {
		t.Errorf("the answer's first video codec is %q, want VP8", codec)
	}
	// Firefox offers an RTX stream per layer; retransmissions come on the
	// media's own stream (one packet cache answers every subscriber), so
	// the answer takes none, and the layers' rids under Firefox's ids.
	if strings.Contains(answer, " rtx/90000") {
		t.Errorf("the answer takes RTX:\n%s", answer)
	}
	for _, uri := range []string{"urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "urn:ietf:params:rtp-hdrext:sdes:mid"} {
		if id := extmapID(offer, uri); id == "" || extmapID(answer, uri) != id {
			t.Errorf("%s is extmap %q in Firefox's offer, %q in the answer", uri, id, extmapID(answer, uri))
		}
	}
	if codec := firstCodec(mediaSection(r.RemoteSDP, "audio")); codec != "opus/48000/2" {
		t.Errorf("the answer's first audio codec is %q, want Opus", codec)
	}
}

// extmapID is the id section gives the header extension uri, "" if none.
func extmapID(section, uri string) string {
	for _, l := range strings.Split(section, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=extmap:"); ok && strings.HasSuffix(v, " "+uri) {
			id, _, _ := strings.Cut(v, " ")
			id, _, _ = strings.Cut(id, "/")
			return id
		}
	}
	return ""
}

// firstCodec is the rtpmap of section's first payload type.
func firstCodec(section string) string {
	line, _, _ := strings.Cut(section, "\r\n")
	fields := strings.Fields(line)
	if len(fields) < 4 {
		return ""
	}
	prefix := "a=rtpmap:" + fields[3] + " "
	for _, l := range strings.Split(section, "\r\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return v
		}
	}
	return ""
}

// whepWatch subscribes a pion WHEP viewer named identity to room's tracks
// and returns what it sees of them.
func (s *stack) whepWatch(t *testing.T, room, identity string) *keyframeWatch {
	t.Helper()
	rx := &keyframeWatch{}
	pc := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { rx.read(tr) })
	r := s.whipPost(t, "/whep/"+room, s.joinToken(t, room, identity, auth.RoleSubscriber), "application/sdp", gatheredOffer(t, pc))
	mustStatus(t, r, http.StatusCreated)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
		t.Fatal(err)
	}
	return rx
}

// whepLayer is the layer (index and rid) of the simulcast video that the
// WHEP viewer identity of room receives, as REST lists it; -1 and "" while
// it receives none. (A WHEP viewer's tracks are listed by the ids of its
// own sections, not by the tracks they carry.)
func whepLayer(t *testing.T, s *stack, room, identity string) (int, string) {
	t.Helper()
	for _, p := range s.participants(t, room) {
		if p["identity"] != identity {
			continue
		}
		rec, _ := p["receiving"].(map[string]any)
		tracks, _ := rec["tracks"].([]any)
		for _, tr := range tracks {
			tr, _ := tr.(map[string]any)
			if rid, _ := tr["rid"].(string); rid != "" && tr["paused"] == false {
				layer, _ := tr["layer"].(float64)
				return int(layer), rid
			}
		}
	}
	return -1, ""
}

// keyRequests is how many keyframe requests (PLI and FIR) the page's
// video streams received.
func keyRequests(r firefoxtest.Report) int {
	n := 0
	for _, v := range firefoxtest.Streams(r.Outbound, "video") {
		n += v.PLI + v.FIR
	}
	return n
}

// firefoxPublishing starts a server that mints the page's tokens and a
// Firefox whose page joins room as "fox", and waits until it sends its
// camera and microphone.
func firefoxPublishing(t *testing.T, room string) (*stack, *firefoxtest.Page, firefoxtest.Report) {
	t.Helper()
	firefoxtest.Require(t)
	checkLeaks(t)
	s := newMediaStack(t, func(c *Config) { c.DevJoinTokens = true })
	page := s.firefoxPage(t, "/rooms/"+room+"?name=fox")
	page.Click(t, "join")
	return s, page, page.Wait(t, "Firefox to join and send", sending)
}

// firefoxSubscribed starts a server with room and a Firefox whose page
// joins it with a subscriber's token, and waits until it is connected.
func firefoxSubscribed(t *testing.T, room string) (*stack, *firefoxtest.Page) {
	t.Helper()
	firefoxtest.Require(t)
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"`+room+`","name":"Firefox"}`)
	page := s.firefoxPage(t, "/rooms/"+room+"?token="+s.joinToken(t, room, "firefox", auth.RoleSubscriber))
	page.Click(t, "join")
	page.Wait(t, "Firefox to connect", func(r firefoxtest.Report) bool { return r.Connection == "connected" })
	return s, page
}

// TestFirefoxPublishes: Firefox joins through the page and publishes its
// camera and microphone; a pion WHEP viewer that comes later receives the
// camera from a keyframe, and the microphone.
func TestFirefoxPublishes(t *testing.T) {
	s, page, rep := firefoxPublishing(t, "foxpub")
	checkFirefoxAnswer(t, rep)
	poll.Until(t, "Firefox's two tracks listed", func() bool {
		for _, p := range s.restParticipants(t, "foxpub") {
			if p.ID == rep.ParticipantID {
				return len(p.Tracks) == 2
			}
		}
		return false
	})
	before := keyRequests(rep)

	// Firefox's encoder makes a keyframe at the start and then only when
	// asked.
	rx := s.whepWatch(t, "foxpub", "viewer")
	poll.Within(t, firefoxtest.Deadline, "a keyframe and audio at the viewer", rx.done)
	got := rx.result()
	if got.codec != webrtc.MimeTypeVP8 || got.width == 0 || got.width*9 != got.height*16 {
		t.Errorf("the viewer got a %s keyframe of %dx%d, want VP8 of Firefox's 16:9 camera", got.codec, got.width, got.height)
	}
	// Where the keyframe came from depends on timing: the server's request,
	// the cache (Firefox's last was recent), or a layer Firefox turned on
	// again when the server asked for it. Said, not checked.
	rep, _ = page.Report()
	t.Logf("Firefox sends %+v; %d keyframe requests since the viewer came, %.0f streams started from a cached keyframe",
		rep.Outbound, keyRequests(rep)-before, promtest.Value(t, s.reg, "troupe_rtc_keyframe_catch_ups_total"))

	// Firefox pads its top layer on the media's own stream (no RTX is
	// negotiated), hundreds of packets a second: the server drops that
	// padding, and what padding the viewer gets is the server's own
	// probing of the viewer's link.
	poll.Within(t, firefoxtest.Deadline, "300 video packets at the viewer", func() bool { return rx.result().video >= 300 })
	padded := rx.result().padding
	probed := promtest.Value(t, s.reg, "troupe_rtc_bandwidth_padding_packets_total")
	t.Logf("the viewer got %d padding packets, the server probed with %.0f and dropped %.0f of Firefox's", padded, probed,
		promtest.Value(t, s.reg, "troupe_rtc_dropped_packets_total", "reason", "padding"))
	if float64(padded) > probed {
		t.Errorf("the viewer got %d padding packets, the server's probes %.0f: Firefox's padding was forwarded", padded, probed)
	}
}

// clipCamera publishes the VP8 and Opus clips over and over, from a pion
// participant named identity of room, until the test ends.
func (s *stack) clipCamera(t *testing.T, room, identity string) {
	t.Helper()
	camera := s.dialWS(t, identity, s.joinToken(t, room, identity, auth.RolePublisher))
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", identity)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", identity)
	if err != nil {
		t.Fatal(err)
	}
	opus, err := opusFrames(recordertest.OpusClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	if _, err := camera.Publish(ctx, video, audio); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := loopClip(ctx, video, recordertest.VP8Clip); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() {
		if err := loopFrames(ctx, audio, opus, 20*time.Millisecond); err != nil {
			t.Error(err)
		}
	})
	waitTracks(t, s, room, identity, 2)
}

// opusFrames reads the Opus packets of an Ogg clip of ClipDir (one 20 ms
// packet a page), without its head and tags.
func opusFrames(clip string) ([][]byte, error) {
	f, err := os.Open(filepath.Join(recordertest.ClipDir(), clip))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", clip, err)
	}
	var frames [][]byte
	for {
		page, _, err := r.ParseNextPage()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", clip, err)
		}
		if !bytes.HasPrefix(page, []byte("OpusHead")) && !bytes.HasPrefix(page, []byte("OpusTags")) {
			frames = append(frames, page)
		}
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("%s: no Opus packet", clip)
	}
	return frames, nil
}

// TestFirefoxViews: Firefox joins with a subscriber's token, and a pion
// participant then sends a VP8 clip and an Opus clip; Firefox decodes the
// video at the clip's size and receives the audio.
func TestFirefoxViews(t *testing.T) {
	s, page := firefoxSubscribed(t, "foxview")
	s.clipCamera(t, "foxview", "camera")
	rep := page.Wait(t, "Firefox to decode 30 frames and receive 50 audio packets", func(r firefoxtest.Report) bool {
		return r.Stats.VideoFramesDecoded >= 30 && r.Stats.AudioPacketsReceived >= 50
	})
	answer := mediaSection(rep.LocalSDP, "video")
	t.Logf("Firefox's answer to the camera:\n%s", answer)
	if codec := firstCodec(answer); codec != "VP8/90000" {
		t.Errorf("Firefox's answer takes %q first for the VP8 camera", codec)
	}
	t.Logf("Firefox receives %+v", rep.Inbound)
	if len(rep.Outbound) != 0 {
		t.Errorf("Firefox, a subscriber, sends %+v", rep.Outbound)
	}
	v, a := firefoxtest.Streams(rep.Inbound, "video"), firefoxtest.Streams(rep.Inbound, "audio")
	if len(v) != 1 || v[0].MimeType != webrtc.MimeTypeVP8 || v[0].Width != 320 || v[0].Height != 240 {
		t.Errorf("Firefox receives video %+v, want one VP8 stream of 320x240", v)
	}
	if len(a) != 1 || !strings.EqualFold(a[0].MimeType, webrtc.MimeTypeOpus) {
		t.Errorf("Firefox receives audio %+v, want one Opus stream", a)
	}
}

// TestFirefoxWithoutH264: a camera sent in H.264, which this Firefox (no
// OpenH264 plug-in) neither offers nor answers, is not sent to it; its
// microphone is, and the connection goes on.
func TestFirefoxWithoutH264(t *testing.T) {
	s, page := firefoxSubscribed(t, "foxh264")

	camera := s.dialWS(t, "camera", s.joinToken(t, "foxh264", "camera", auth.RolePublisher))
	clips, err := recordertest.NewClips(recordertest.H264Clip, recordertest.OpusClip)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		_ = clips.Wait()
	})
	if _, err := camera.Publish(ctx, clips.Video, clips.Audio); err != nil {
		t.Fatal(err)
	}
	clips.Play(ctx)
	rep := page.Wait(t, "Firefox to receive 50 audio packets", func(r firefoxtest.Report) bool {
		return r.Stats.AudioPacketsReceived >= 50 && r.Connection == "connected"
	})
	if strings.Contains(rep.LocalSDP, " H264/90000") {
		t.Skip("this Firefox takes H.264 (its OpenH264 plug-in is installed)")
	}
	if rep.Stats.InboundVideo != 0 {
		t.Errorf("Firefox receives %d video streams of an H.264 camera it did not take", rep.Stats.InboundVideo)
	}
	var received []string
	published := map[string]string{} // the camera's track ids by kind
	for _, p := range s.restParticipants(t, "foxh264") {
		if p.Identity == "firefox" && p.Receiving != nil {
			for _, tr := range p.Receiving.Tracks {
				received = append(received, tr.TrackID)
			}
		}
		if p.Identity == "camera" {
			for _, tr := range p.Tracks {
				published[tr.Kind] = tr.ID
			}
		}
	}
	if len(received) != 1 || received[0] != published["audio"] {
		t.Errorf("Firefox receives %v of the camera's %v, want the microphone alone", received, published)
	}
}

// encodingsOfReport is what a Firefox page's camera encodes against the
// last layers message it got, as pageEncodings.
func encodingsOfReport(r firefoxtest.Report) pageEncodings {
	if r.Layers == nil {
		return pageEncodings{}
	}
	e := pageEncodings{Active: r.Layers.Active, Paused: r.Layers.Paused}
	for _, enc := range r.Encodings {
		if enc.Active {
			e.Sending = append(e.Sending, enc.RID)
		} else {
			e.Stopped = append(e.Stopped, enc.RID)
		}
	}
	return e
}

// TestFirefoxSimulcast: Firefox publishes its camera in the page's three
// layers. The REST API lists one video track with the three at their
// sizes; a pion viewer receives one layer of it from a keyframe; Firefox
// stops encoding the layers the server says nobody receives (setParameters
// in Firefox), and the viewer goes on with the lowest when the room's
// quality is capped to it.
func TestFirefoxSimulcast(t *testing.T) {
	s, page, rep := firefoxPublishing(t, "foxsim")
	if rids := mediaSection(rep.LocalSDP, "video"); !strings.Contains(rids, "a=simulcast:send q;h;f") {
		t.Fatalf("Firefox's offer does not send the page's three layers:\n%s", rids)
	}
	_, layers := s.waitCamera(t, "foxsim", "fox", pageLayers)
	t.Logf("Firefox's layers as REST lists them: %+v", layers)
	for i, want := range []int{320, 640, 1280} {
		if layers[i].Width != want || layers[i].Height != want*9/16 {
			t.Errorf("layer %s is %dx%d, want %dx%d", layers[i].RID, layers[i].Width, layers[i].Height, want, want*9/16)
		}
	}

	rx := s.whepWatch(t, "foxsim", "viewer")
	poll.Within(t, firefoxtest.Deadline, "a keyframe and audio at the viewer", rx.done)
	got := rx.result()
	if got.codec != webrtc.MimeTypeVP8 || !slices.ContainsFunc(layers, func(l restLayer) bool { return l.Width == got.width && l.Height == got.height }) {
		t.Errorf("the viewer's first keyframe is %s of %dx%d, the size of no layer of %+v", got.codec, got.width, got.height, layers)
	}
	if n := rx.videoTracks(); n != 1 {
		t.Errorf("the viewer receives %d video tracks, want 1", n)
	}
	layer, rid := whepLayer(t, s, "foxsim", "viewer")
	if layer < 0 || layer >= len(layers) || layers[layer].RID != rid {
		t.Errorf("the viewer receives layer %d (%q) of %+v", layer, rid, layers)
	}
	var enc pageEncodings
	page.Wait(t, "Firefox's encodings to follow the server's layers message", func(r firefoxtest.Report) bool {
		enc = encodingsOfReport(r)
		return enc.follows() && len(enc.Active) > 0
	})
	t.Logf("Firefox encodes %+v; the viewer received layer %d first", enc, layer)

	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/foxsim", `{"config":{"quality":"180p"}}`), http.StatusOK)
	page.Wait(t, "Firefox to stop the layers above 180p", func(r firefoxtest.Report) bool {
		enc = encodingsOfReport(r)
		return enc.follows() && slices.Equal(enc.Active, pageLayers[:1]) && slices.Equal(enc.Stopped, pageLayers[1:])
	})
	poll.Within(t, firefoxtest.Deadline, "the viewer to receive the lowest layer", func() bool {
		layer, rid = whepLayer(t, s, "foxsim", "viewer")
		return layer == 0 && rid == pageLayers[0]
	})
	frames := rep.Outbound
	rep = page.Wait(t, "Firefox to go on encoding the lowest layer", func(r firefoxtest.Report) bool {
		return encodedMore(r.Outbound, frames, "q", 30)
	})
	t.Logf("Firefox sends %+v", rep.Outbound)
}

// encodedMore reports whether the layer rid of now encoded more than n
// frames since before.
func encodedMore(now, before []firefoxtest.RTP, rid string, n int) bool {
	was := 0
	for _, s := range before {
		if s.Kind == "video" && s.RID == rid {
			was = s.Frames
		}
	}
	for _, s := range now {
		if s.Kind == "video" && s.RID == rid {
			return s.Frames > was+n
		}
	}
	return false
}
