package recordertest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// The encoded clips of rtc/recorder/testdata (made once with ffmpeg, see
// make.sh there): 4 s of VP8 and Opus, and the sync clips, which beep as
// they flash.
const (
	VP8Clip      = "vp8.ivf"
	OpusClip     = "opus.ogg"
	SyncVP8Clip  = "sync_vp8.ivf"
	SyncOpusClip = "sync_opus.ogg"
)

// ClipDir is the directory of the clips.
func ClipDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Clips publishes a VP8 clip and an Opus clip in real time, as a browser
// would send them: add Video and Audio to a peer connection, then Play.
type Clips struct {
	Video, Audio         *webrtc.TrackLocalStaticSample
	videoClip, audioClip string
	wg                   sync.WaitGroup
	errs                 chan error
}

// NewClips makes the tracks of a video clip (IVF, VP8) and an audio clip
// (Ogg, Opus, one 20 ms packet a page), named as in ClipDir.
func NewClips(videoClip, audioClip string) (*Clips, error) {
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "clip")
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
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.errs <- c.playVP8(ctx) }()
	go func() { defer c.wg.Done(); c.errs <- c.playOpus(ctx) }()
}

// Wait waits for the clips' end and returns the first error.
func (c *Clips) Wait() error {
	c.wg.Wait()
	return errors.Join(<-c.errs, <-c.errs)
}

func (c *Clips) playVP8(ctx context.Context) error {
	f, err := os.Open(filepath.Join(ClipDir(), c.videoClip))
	if err != nil {
		return err
	}
	defer f.Close()
	r, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return err
	}
	frame := time.Duration(float64(time.Second) * float64(hdr.TimebaseNumerator) / float64(hdr.TimebaseDenominator))
	return pace(ctx, c.Video, frame, func() ([]byte, error) {
		b, _, err := r.ParseNextFrame()
		return b, err
	})
}

func (c *Clips) playOpus(ctx context.Context) error {
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
	return pace(ctx, c.Audio, 20*time.Millisecond, func() ([]byte, error) { // the clip's frame_duration, one per page
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

// pace writes the frames next returns to track, one every frame, until
// next returns io.EOF (nil) or another error, or ctx ends.
func pace(ctx context.Context, track *webrtc.TrackLocalStaticSample, frame time.Duration, next func() ([]byte, error)) error {
	tick := time.NewTicker(frame)
	defer tick.Stop()
	for {
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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
