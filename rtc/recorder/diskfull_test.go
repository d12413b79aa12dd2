package recorder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes for the test, or skips it where
// mounting is not allowed.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// A disk running short stops the recording with ErrDiskFull, whether the
// free-space minimum is crossed or a write fails, and what was written
// plays.
func TestRecordDiskFull(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	for _, tc := range []struct {
		name    string
		size    int
		minFree uint64
	}{
		{"below the minimum", 512 << 10, 400 << 10},
		{"out of space", 160 << 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaktest.Check(t)
			dir := smallDisk(t, tc.size)
			srcs := []source{
				{info: opusInfo("hal", "a1"), frames: loadOgg(t, "opus.ogg")},
				{info: videoInfo("hal", "v1", webrtc.MimeTypeVP8), frames: loadIVF(t, "vp8.ivf")},
			}
			r, pub := publishing(t, Config{Dir: dir, MinFreeBytes: tc.minFree}, srcs)
			pub.run(schedule(srcs, impair{}))
			<-r.Done() // it stopped by itself
			if !errors.Is(r.Err(), ErrDiskFull) {
				t.Fatalf("Err = %v", r.Err())
			}
			files, err := r.Close(context.Background())
			if !errors.Is(err, ErrDiskFull) || len(files) != 1 {
				t.Fatalf("Close = %+v, %v", files, err)
			}
			path := filepath.Join(dir, files[0].Name)
			recordertest.DecodesClean(t, path)
			if d := ffprobe(t, path).duration(t); d <= 0 || d >= span(srcs[0].frames) {
				t.Fatalf("duration %v of a recording stopped short", d)
			}
			if _, err := r.AddTrack(opusInfo("hal", "a2")); !errors.Is(err, ErrClosed) {
				t.Fatalf("AddTrack after the failure: %v", err)
			}
		})
	}
	t.Run("full at the start", func(t *testing.T) {
		dir := smallDisk(t, 64<<10)
		if _, err := New(Config{Dir: filepath.Join(dir, "rec"), MinFreeBytes: 1 << 20}); !errors.Is(err, ErrDiskFull) {
			t.Fatalf("New = %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "rec")); err != nil {
			t.Fatal(err)
		}
	})
}
