package recordertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// The encoded clips of rtc/recorder/testdata (made once with ffmpeg, see
// make.sh there): 4 s of VP8, VP9, H.264 (Annex B, constrained baseline)
// and Opus, and the sync clips, which beep as they flash.
const (
	VP8Clip      = "vp8.ivf"
	VP9Clip      = "vp9.ivf"
	H264Clip     = "h264.h264"
	OpusClip     = "opus.ogg"
	SyncVP8Clip  = "sync_vp8.ivf"
	SyncOpusClip = "sync_opus.ogg"
)

// ClipGOP is the frames from one keyframe to the next in every video clip
// (make.sh asks for one a second at 30 fps): a file that missed a clip's
// first keyframe begins ClipGOP frames later.
const ClipGOP = 30

// h264FPS is the frame rate of the H.264 clip, which an Annex B stream
// does not carry (make.sh encodes it at 30 fps).
const h264FPS = 30

// ClipDir is the directory of the clips.
func ClipDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Clips publishes a video clip and an Opus clip in real time, as a
// browser would send them: add Video and Audio to a peer connection, then
// Play.
type Clips struct {
	Video, Audio         *webrtc.TrackLocalStaticSample
	videoClip, audioClip string
	wg                   sync.WaitGroup
	errs                 chan error
	waitOnce             sync.Once
	err                  error // of the clips, once Wait returns

	mu           sync.Mutex // guards video and audio
	video, audio sendTimes
}

// sendTimes are when each frame of a clip was due (its capture time, which
// its RTP timestamp tells: one written late on a busy machine keeps it),
// and how long a frame lasts.
type sendTimes struct {
	at    []time.Time
	frame time.Duration
}

// span is from the first of the last n frames sent to the end of the
// last one; zero when n is 0.
func (s sendTimes) span(n int) (first, end time.Time) {
	if n <= 0 || n > len(s.at) {
		return time.Time{}, time.Time{}
	}
	return s.at[len(s.at)-n], s.at[len(s.at)-1].Add(s.frame)
}

// NewClips makes the tracks of a video clip (IVF with VP8 or VP9, or an
// H.264 Annex B stream, .h264) and an audio clip (Ogg, Opus, one 20 ms
// packet a page), named as in ClipDir.
func NewClips(videoClip, audioClip string) (*Clips, error) {
	mime, err := videoMime(videoClip)
	if err != nil {
		return nil, err
	}
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime}, "video", "clip")
	if err != nil {
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "clip")
	if err != nil {
		return nil, err
	}
	return &Clips{Video: video, Audio: audio, videoClip: videoClip, audioClip: audioClip, errs: make(chan error, 2)}, nil
}

// Play sends both clips once, each paced by its own timing, from two
// goroutines that end with the clips or ctx; Wait waits for them.
func (c *Clips) Play(ctx context.Context) {
	// One origin for both clips, as one capture clock: a clip whose
	// goroutine starts late catches up, its frames keeping their times
	// beside the other's.
	start := time.Now()
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.errs <- c.playVideo(ctx, start) }()
	go func() { defer c.wg.Done(); c.errs <- c.playOpus(ctx, start) }()
}

// ReadRTCP reads what the server sends each of the clips' senders, as a
// browser does, until their peer connection closes, from a goroutine per
// sender that ends with it: pion's interceptors act only on the RTCP that
// is read, so that a publisher that reads none answers no NACK.
func (c *Clips) ReadRTCP(senders []*webrtc.RTPSender) {
	for _, s := range senders {
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := s.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

// Wait waits for the clips' end and returns their errors; it may be
// called again, and returns the same.
func (c *Clips) Wait() error {
	c.waitOnce.Do(func() {
		c.wg.Wait()
		close(c.errs) // a Wait without a Play has none
		for err := range c.errs {
			c.err = errors.Join(c.err, err)
		}
	})
	return c.err
}

// Frames returns how many video and audio frames were sent.
func (c *Clips) Frames() (video, audio int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.video.at), len(c.audio.at)
}

// Sent is how long the publisher really sent the media a file holds: from
// when the first of the last video frames (and of the last audio frames)
// was sent to when the time of the last one ended, each at the time it was
// due, by the wall clock; a count of zero leaves the track out. A file
// that holds the whole clips lasts Sent(Frames()), which counts when each
// clip started; a file that began at a later keyframe holds fewer frames.
func (c *Clips) Sent(videoFrames, audioFrames int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first, end time.Time
	for _, s := range [][2]time.Time{vec(c.video.span(videoFrames)), vec(c.audio.span(audioFrames))} {
		if s[0].IsZero() {
			continue
		}
		if first.IsZero() || s[0].Before(first) {
			first = s[0]
		}
		if s[1].After(end) {
			end = s[1]
		}
	}
	return end.Sub(first)
}

func vec(first, end time.Time) [2]time.Time { return [2]time.Time{first, end} }

// Span is how long a file that holds the last videoFrames and audioFrames
// frames sent lasts by their capture times, as a WebM or Matroska file
// counts it: from its first frame's time to its last frame's (not to that
// frame's end, as Sent); a count of zero leaves the track out.
func (c *Clips) Span(videoFrames, audioFrames int) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first, last time.Time
	for _, s := range []struct {
		t sendTimes
		n int
	}{{c.video, videoFrames}, {c.audio, audioFrames}} {
		if s.n <= 0 || s.n > len(s.t.at) {
			continue
		}
		if f := s.t.at[len(s.t.at)-s.n]; first.IsZero() || f.Before(first) {
			first = f
		}
		if l := s.t.at[len(s.t.at)-1]; l.After(last) {
			last = l
		}
	}
	return last.Sub(first)
}

// videoMime is the codec of a video clip, by its file: an IVF's FourCC, or
// H.264 for an Annex B stream (.h264).
func videoMime(clip string) (string, error) {
	if filepath.Ext(clip) == ".h264" {
		return webrtc.MimeTypeH264, nil
	}
	f, err := os.Open(filepath.Join(ClipDir(), clip))
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", clip, err)
	}
	switch hdr.FourCC {
	case "VP80":
		return webrtc.MimeTypeVP8, nil
	case "VP90":
		return webrtc.MimeTypeVP9, nil
	}
	return "", fmt.Errorf("%s: IVF of %q, not VP8 or VP9", clip, hdr.FourCC)
}

func (c *Clips) playVideo(ctx context.Context, start time.Time) error {
	f, err := os.Open(filepath.Join(ClipDir(), c.videoClip))
	if err != nil {
		return err
	}
	defer f.Close()
	if c.Video.Codec().MimeType == webrtc.MimeTypeH264 {
		return c.playH264(ctx, start, f)
	}
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return err
	}
	frame := time.Duration(float64(time.Second) * float64(hdr.TimebaseNumerator) / float64(hdr.TimebaseDenominator))
	return c.pace(ctx, start, c.Video, frame, func() ([]byte, error) {
		b, _, err := r.ParseNextFrame()
		return b, err
	})
}

// playH264 sends an Annex B stream one access unit a frame: the NAL units
// up to and with each picture's slice (make.sh encodes one slice a
// picture, with the parameter sets before each IDR).
func (c *Clips) playH264(ctx context.Context, start time.Time, f io.Reader) error {
	r, err := h264reader.NewReader(f)
	if err != nil {
		return err
	}
	return c.pace(ctx, start, c.Video, time.Second/h264FPS, func() ([]byte, error) {
		var au []byte
		for {
			nal, err := r.NextNAL()
			if errors.Is(err, io.EOF) && len(au) > 0 {
				return nil, fmt.Errorf("%s ends inside an access unit", c.videoClip)
			}
			if err != nil {
				return nil, err
			}
			au = append(au, 0, 0, 0, 1)
			au = append(au, nal.Data...)
			if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
				return au, nil
			}
		}
	})
}

func (c *Clips) playOpus(ctx context.Context, start time.Time) error {
	f, err := os.Open(filepath.Join(ClipDir(), c.audioClip))
	if err != nil {
		return err
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		return err
	}
	var last uint64
	return c.pace(ctx, start, c.Audio, 20*time.Millisecond, func() ([]byte, error) { // the clip's frame_duration, one per page
		for {
			page, hdr, err := r.ParseNextPage()
			if err != nil || hdr.GranulePosition != 0 && hdr.GranulePosition != last {
				if err == nil {
					last = hdr.GranulePosition
				}
				return page, err
			}
			// The Opus head and tags pages.
		}
	})
}

// pace writes the frames next returns to track, one every frame on a
// fixed schedule from start, until next returns io.EOF (nil) or another error, or
// ctx ends. A frame written late (a busy machine) does not push the
// following ones back: like a camera's, the clip's frames keep their
// capture times, which the RTP timestamps and sender reports tell.
func (c *Clips) pace(ctx context.Context, start time.Time, track *webrtc.TrackLocalStaticSample, frame time.Duration, next func() ([]byte, error)) error {
	times := &c.audio
	if track == c.Video {
		times = &c.video
	}
	c.mu.Lock()
	times.frame = frame
	c.mu.Unlock()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 1; ; i++ {
		b, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := track.WriteSample(media.Sample{Data: b, Duration: frame}); err != nil {
			return err
		}
		c.mu.Lock()
		times.at = append(times.at, start.Add(time.Duration(i-1)*frame))
		c.mu.Unlock()
		timer.Reset(time.Until(start.Add(time.Duration(i) * frame)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}
