package httpapi

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// The GStreamer interop suite: GStreamer's webrtcbin publishes through
// WHIP and plays through WHEP against a real server, as a user's
// pipeline would. It runs with TROUPE_GST_TESTS=1 (CI sets it and installs
// GStreamer); the variable set and GStreamer missing is a failure, not a
// skip. Debian 12's GStreamer 1.22 has no whipsink or whepsrc (they are
// in gst-plugins-rs, which Debian does not ship), so testdata/gst/webrtc.py
// does their HTTP part around webrtcbin, trickling its candidates by PATCH.

// gstTimeout bounds how long a GStreamer process may take to do its part:
// a failure bound for a loaded machine, not a measure.
const gstTimeout = 2 * time.Minute

// gstPython is the interpreter with GStreamer's introspection bindings
// (Debian's python3-gi), not whatever python3 comes first on the PATH.
const gstPython = "/usr/bin/python3"

// requireGStreamer skips t unless TROUPE_GST_TESTS=1, and fails it when
// the variable is set but GStreamer, its Python bindings or one of
// the elements is missing.
func requireGStreamer(t *testing.T, elements ...string) {
	t.Helper()
	if os.Getenv("TROUPE_GST_TESTS") != "1" {
		t.Skip("the GStreamer interop tests run with TROUPE_GST_TESTS=1 (they need GStreamer 1.22's webrtcbin and python3-gi)")
	}
	if _, err := exec.LookPath("gst-inspect-1.0"); err != nil {
		t.Fatalf("TROUPE_GST_TESTS=1 but GStreamer is not installed: %v", err)
	}
	check := exec.Command(gstPython, "-c", `import gi; gi.require_version("GstWebRTC", "1.0"); gi.require_version("GstSdp", "1.0")`)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("TROUPE_GST_TESTS=1 but GStreamer's Python bindings are missing (python3-gi, gir1.2-gst-plugins-bad-1.0): %v: %s", err, out)
	}
	for _, e := range append([]string{"webrtcbin", "nicesrc"}, elements...) {
		if !gstHas(e) {
			t.Fatalf("TROUPE_GST_TESTS=1 but the GStreamer element %s is missing", e)
		}
	}
}

// gstHas reports whether the GStreamer element is installed.
func gstHas(element string) bool {
	return exec.Command("gst-inspect-1.0", element).Run() == nil
}

// gstProc is a running testdata/gst/webrtc.py and the lines it prints.
type gstProc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed once the process ended
	err   error         // of the process, once done is closed
}

// startGStreamer runs testdata/gst/webrtc.py with args in a process group
// of its own, which the test's cleanup kills.
func startGStreamer(t *testing.T, args ...string) *gstProc {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "gst", "webrtc.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gstPython, append([]string{script}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &gstProc{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			t.Logf("gstreamer: %s", sc.Text())
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for so many lines
			}
		}
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		// The whole group: webrtcbin's process and anything it started.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	})
	return p
}

// stop asks the process to end its session and waits for it to exit.
func (p *gstProc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(gstTimeout):
		t.Fatalf("GStreamer did not exit in %v", gstTimeout)
		return nil
	}
}

// waitLine waits for a line that starts with prefix and returns it; it
// fails t if the process ends first.
func (p *gstProc) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(gstTimeout)
	for {
		select {
		case l := <-p.lines:
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-p.done:
			// Lines printed before the end are still in the channel.
			for {
				select {
				case l := <-p.lines:
					if strings.HasPrefix(l, prefix) {
						return l
					}
				default:
					t.Fatalf("GStreamer ended (%v) before it printed %q", p.err, prefix)
				}
			}
		case <-timeout:
			t.Fatalf("GStreamer printed no %q in %v", prefix, gstTimeout)
		}
	}
}

// requestLog is the HTTP requests a server saw, for a test to check and
// show.
type requestLog struct {
	mu   sync.Mutex // guards seen
	seen []string
}

// serveLogged serves s's API on a server of its own that logs each
// request GStreamer sends, and returns its URL.
func (s *stack) serveLogged(t *testing.T, log *requestLog) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		s.api.ServeHTTP(rec, r)
		line := fmt.Sprintf("%s %s (%s) -> %d", r.Method, r.URL.Path, r.Header.Get("Content-Type"), rec.status)
		log.mu.Lock()
		log.seen = append(log.seen, line)
		log.mu.Unlock()
		t.Logf("server saw %s", line)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// count returns how many requests of method got status.
func (l *requestLog) count(method string, status int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		if strings.HasPrefix(s, method+" ") && strings.HasSuffix(s, fmt.Sprintf("-> %d", status)) {
			n++
		}
	}
	return n
}

// statusRecorder is a ResponseWriter that keeps the status it was given.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// TestGStreamerWHIP: GStreamer's webrtcbin publishes a 320x240 test
// pattern and an Opus tone through WHIP, trickling its candidates, and a
// pion WHEP viewer receives both, the video from a keyframe of that size.
func TestGStreamerWHIP(t *testing.T) {
	audio := "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! " +
		"application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! wb. "
	// GStreamer's H.264 encoders mark their constrained baseline streams
	// 42c0 (constraint_set0 and 1) where browsers write 42e0: the same
	// profile, which a viewer offering 42e0 receives.
	h264 := "rtph264pay pt=102 config-interval=-1 ! " +
		"application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000 ! wb. "
	raw := "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
	for _, tc := range []struct {
		name, codec string
		encoders    []string // the first installed one is used
		pipeline    map[string]string
	}{
		{name: "VP8", codec: webrtc.MimeTypeVP8, encoders: []string{"vp8enc"}, pipeline: map[string]string{
			"vp8enc": raw + "vp8enc deadline=1 keyframe-max-dist=3000 ! rtpvp8pay pt=96 ! " +
				"application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! wb. ",
		}},
		{name: "H264", codec: webrtc.MimeTypeH264, encoders: []string{"x264enc", "openh264enc"}, pipeline: map[string]string{
			"x264enc": raw + "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=3000 ! " +
				"video/x-h264,profile=constrained-baseline ! " + h264,
			"openh264enc": raw + "openh264enc ! video/x-h264,profile=constrained-baseline ! " + h264,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			requireGStreamer(t, "videotestsrc", "audiotestsrc", "opusenc", "rtpopuspay", "rtpvp8pay", "rtph264pay")
			encoder := ""
			for _, e := range tc.encoders {
				if gstHas(e) {
					encoder = e
					break
				}
			}
			if encoder == "" {
				t.Skipf("no %s encoder installed (%s)", tc.name, strings.Join(tc.encoders, ", "))
			}
			s := newMediaStack(t, nil)
			room := "gst" + strings.ToLower(tc.name)
			s.createRoom(t, `{"id":"`+room+`","name":"GStreamer"}`)
			var seen requestLog
			url := s.serveLogged(t, &seen)
			gst := startGStreamer(t, "whip", url+"/whip/"+room, s.joinToken(t, room, "gstreamer", auth.RolePublisher),
				"webrtcbin name=wb bundle-policy=max-bundle "+tc.pipeline[encoder]+audio)
			gst.waitLine(t, "connected")
			waitTracks(t, s, room, "gstreamer", 2)

			rx := &keyframeWatch{}
			pc := transceiverPeer(t, clientAPI(t), webrtc.RTPTransceiverDirectionRecvonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
			pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { rx.read(tr) })
			r := s.whipPost(t, "/whep/"+room, s.joinToken(t, room, "viewer", auth.RoleSubscriber), "application/sdp", gatheredOffer(t, pc))
			mustStatus(t, r, http.StatusCreated)
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
				t.Fatal(err)
			}
			// The viewer joins after the pipeline's first keyframe, and
			// the encoder's next is 100 s away: the keyframe it gets
			// comes from the server's PLI.
			poll.Until(t, "a keyframe and audio at the viewer", rx.done)
			got := rx.result()
			if got.codec != tc.codec {
				t.Errorf("the viewer received %s, want %s", got.codec, tc.codec)
			}
			if tc.codec == webrtc.MimeTypeVP8 && (got.width != 320 || got.height != 240) {
				t.Errorf("the VP8 keyframe is %dx%d, want 320x240", got.width, got.height)
			}
			if seen.count(http.MethodPatch, http.StatusNoContent) == 0 {
				t.Error("GStreamer trickled no candidate the server took")
			}

			// Stopped, the pipeline ends its session with a DELETE.
			if err := gst.stop(t); err != nil {
				t.Errorf("GStreamer exited with %v", err)
			}
			gst.waitLine(t, "deleted 200")
			waitTracks(t, s, room, "gstreamer", -1)
		})
	}
}

// waitTracks waits until the participant identity of room publishes n
// tracks, or with n < 0 until it has left.
func waitTracks(t *testing.T, s *stack, room, identity string, n int) {
	t.Helper()
	what := fmt.Sprintf("%s to publish %d tracks", identity, n)
	if n < 0 {
		what = identity + " to leave"
	}
	poll.Until(t, what, func() bool {
		for _, p := range s.participants(t, room) {
			if p["identity"] == identity {
				return len(p["tracks"].([]any)) == n
			}
		}
		return n < 0
	})
}

// keyframeWatch reads a viewer's tracks until it has seen a video
// keyframe and audio packets.
type keyframeWatch struct {
	mu     sync.Mutex // guards got and videos
	got    keyframeSeen
	videos int // video tracks read
}

type keyframeSeen struct {
	codec         string
	keyframe      bool
	width, height int // of a VP8 keyframe
	audio         int // packets
	// video and padding count the video packets with a payload and
	// those of padding alone.
	video, padding int
}

func (w *keyframeWatch) done() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got.keyframe && w.got.audio >= 50
}

func (w *keyframeWatch) result() keyframeSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got
}

// videoTracks is how many video tracks w read.
func (w *keyframeWatch) videoTracks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.videos
}

// read reads tr until its peer connection closes.
func (w *keyframeWatch) read(tr *webrtc.TrackRemote) {
	mime := tr.Codec().MimeType
	if tr.Kind() == webrtc.RTPCodecTypeVideo {
		w.mu.Lock()
		w.videos++
		w.mu.Unlock()
	}
	for {
		p, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		w.mu.Lock()
		switch {
		case tr.Kind() == webrtc.RTPCodecTypeAudio:
			w.got.audio++
		case len(p.Payload) == 0:
			w.got.padding++
		default:
			w.got.video++
			switch {
			case w.got.keyframe:
			case mime == webrtc.MimeTypeVP8:
				w.got.width, w.got.height, w.got.keyframe = vp8KeyframeSize(p.Payload)
				w.got.codec = mime
			case mime == webrtc.MimeTypeH264:
				w.got.keyframe = h264Keyframe(p.Payload)
				w.got.codec = mime
			}
		}
		w.mu.Unlock()
	}
}

// vp8KeyframeSize returns the size of the VP8 keyframe that payload
// starts (RFC 7741, and RFC 6386 section 9.1: the frame tag, the start
// code 9d 01 2a, then 14-bit width and height).
func vp8KeyframeSize(payload []byte) (width, height int, ok bool) {
	var d codecs.VP8Packet
	frame, err := d.Unmarshal(payload)
	if err != nil || d.S != 1 || d.PID != 0 || len(frame) < 10 || frame[0]&0x01 != 0 {
		return 0, 0, false
	}
	if frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	return int(binary.LittleEndian.Uint16(frame[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(frame[8:]) & 0x3fff), true
}

// h264Keyframe reports whether payload carries an IDR slice or an SPS
// (RFC 6184: a single NAL unit, a STAP-A or the start of an FU-A).
func h264Keyframe(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	key := func(t byte) bool { return t == 5 || t == 7 }
	switch t := payload[0] & 0x1f; t {
	case 24:
		for b := payload[1:]; len(b) > 2; {
			n := int(binary.BigEndian.Uint16(b))
			if n == 0 || len(b) < 2+n {
				return false
			}
			if key(b[2] & 0x1f) {
				return true
			}
			b = b[2+n:]
		}
		return false
	case 28:
		return payload[1]&0x80 != 0 && key(payload[1]&0x1f)
	default:
		return key(t)
	}
}

// TestGStreamerWHEP: a pion publisher sends real VP8 and Opus clips, and
// GStreamer's webrtcbin receives them through WHEP, trickling its
// candidates, decodes 30 frames of 320x240, and leaves.
func TestGStreamerWHEP(t *testing.T) {
	checkLeaks(t)
	requireGStreamer(t, "rtpvp8depay", "vp8dec", "rtpopusdepay", "opusdec")
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"gstwhep","name":"GStreamer"}`)
	s.clipCamera(t, "gstwhep", "camera")

	var seen requestLog
	url := s.serveLogged(t, &seen)
	const frames = 30
	gst := startGStreamer(t, "whep", url+"/whep/gstwhep", s.joinToken(t, "gstwhep", "gstreamer", auth.RoleSubscriber), fmt.Sprint(frames))
	if got, want := gst.waitLine(t, "decoded "), fmt.Sprintf("decoded %d 320x240", frames); got != want {
		t.Errorf("GStreamer printed %q, want %q", got, want)
	}
	select {
	case <-gst.done:
	case <-time.After(gstTimeout):
		t.Fatalf("GStreamer did not exit in %v once it decoded the frames", gstTimeout)
	}
	if gst.err != nil {
		t.Errorf("GStreamer exited with %v", gst.err)
	}
	// Done, the viewer ends its session with a DELETE.
	gst.waitLine(t, "deleted 200")
	waitTracks(t, s, "gstwhep", "gstreamer", -1)
	if seen.count(http.MethodPatch, http.StatusNoContent) == 0 {
		t.Error("GStreamer trickled no candidate the server took")
	}
}

// loopClip sends the IVF clip (a keyframe every second) on track at its
// frame rate, over and over, until ctx ends: a viewer that joins at any
// time gets a keyframe within a second.
func loopClip(ctx context.Context, track *webrtc.TrackLocalStaticSample, clip string) error {
	f, err := os.Open(filepath.Join(recordertest.ClipDir(), clip))
	if err != nil {
		return err
	}
	defer f.Close()
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return fmt.Errorf("%s: %w", clip, err)
	}
	var frames [][]byte
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", clip, err)
		}
		frames = append(frames, frame)
	}
	if len(frames) == 0 {
		return fmt.Errorf("%s: no frame", clip)
	}
	return loopFrames(ctx, track, frames, time.Second*time.Duration(hdr.TimebaseNumerator)/time.Duration(hdr.TimebaseDenominator))
}

// loopFrames sends frames on track, one every d, over and over, until ctx
// ends.
func loopFrames(ctx context.Context, track *webrtc.TrackLocalStaticSample, frames [][]byte, d time.Duration) error {
	// A ticker paces the frames as a camera does; nothing waits on it.
	tick := time.NewTicker(d)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := track.WriteSample(media.Sample{Data: frames[i%len(frames)], Duration: d}); err != nil {
			return err
		}
	}
}
