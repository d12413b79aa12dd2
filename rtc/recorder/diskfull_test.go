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

// smallDiskOf measures the free space of a disk of size bytes that holds
// only the files under dir: a small disk where no tmpfs can be mounted.
func smallDiskOf(t *testing.T, size uint64) func(dir string) (uint64, error) {
	return func(dir string) (uint64, error) {
		var used uint64
		err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			used += uint64(info.Size()) //nolint:gosec // a file's size is not negative
			return nil
		})
		if err != nil {
			t.Errorf("measure %s: %v", dir, err)
			return 0, err
		}
		return size - min(used, size), nil
	}
}

// A disk running short stops the recording with ErrDiskFull, whether the
// free-space minimum is crossed (on a tmpfs, or as a measure the recorder
// is given says) or a write fails, and what was written plays.
func TestRecordDiskFull(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	for _, tc := range []struct {
		name    string
		size    int
		minFree uint64
		mount   bool
	}{
		{"below the minimum", 512 << 10, 400 << 10, true},
		{"below the minimum measured", 512 << 10, 400 << 10, false},
		{"out of space", 160 << 10, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaktest.Check(t)
			cfg := Config{MinFreeBytes: tc.minFree}
			if tc.mount {
				cfg.Dir = smallDisk(t, tc.size)
			} else {
				cfg.Dir, cfg.FreeSpace = t.TempDir(), smallDiskOf(t, uint64(tc.size))
			}
			dir := cfg.Dir
			srcs := []source{
				{info: opusInfo("hal", "a1"), frames: loadOgg(t, "opus.ogg")},
				{info: videoInfo("hal", "v1", webrtc.MimeTypeVP8), frames: loadIVF(t, "vp8.ivf")},
			}
			r, pub := publishing(t, cfg, srcs)
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
	t.Run("a measure that fails", func(t *testing.T) {
		broken := errors.New("no such disk")
		_, err := New(Config{Dir: t.TempDir(), MinFreeBytes: 1, FreeSpace: func(string) (uint64, error) { return 0, broken }})
		if !errors.Is(err, broken) || errors.Is(err, ErrDiskFull) {
			t.Fatalf("New = %v", err)
		}
	})
}
