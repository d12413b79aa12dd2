package recorder

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// startRecording publishes the VP8 and Opus clips into a recorder in dir
// and leaves it running: the file is as a crash would leave it.
func startRecording(t testing.TB, dir string) *Recorder {
	t.Helper()
	srcs := []source{
		{info: opusInfo("gil", "a1"), frames: loadOgg(t, "opus.ogg")},
		{info: videoInfo("gil", "v1", webrtc.MimeTypeVP8), frames: loadIVF(t, "vp8.ivf")},
	}
	r, pub := publishing(t, Config{Dir: dir}, srcs)
	pub.run(schedule(srcs, impair{}))
	// Let the last second go out of the interleaving hold.
	pub.clk.Advance(time.Second)
	r.barrier()
	return r
}

// TestHelperRecordUntilKilled is the process TestRecordSIGKILL kills.
func TestHelperRecordUntilKilled(t *testing.T) {
	dir := os.Getenv("TROUPE_RECORDER_KILL_DIR")
	if dir == "" {
		t.Skip("run by TestRecordSIGKILL")
	}
	startRecording(t, dir)
	os.Stdout.WriteString("recording\n")
	select {} // until killed
}

// A recording process killed with SIGKILL leaves a file that plays as it
// is, and that Finalize makes whole (duration, cues).
func TestRecordSIGKILL(t *testing.T) {
	recordertest.NeedFFmpeg(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperRecordUntilKilled$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "TROUPE_RECORDER_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "recording\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper said %q: %v", line, err)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	path := filepath.Join(dir, "gil.webm")
	// As the kill left it, the file plays: ffmpeg decodes it, at most
	// noting that it ends in the middle of an element.
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput(); err != nil ||
		len(out) > 0 && !strings.Contains(string(out), "File ended prematurely") {
		t.Fatalf("the killed recording does not play: %v\n%s", err, out)
	}
	// Its header's duration was kept near the truth while it was written.
	if d := ffprobe(t, path).duration(t); d < 2*time.Second {
		t.Fatalf("the killed recording says it lasts %v", d)
	}
	if _, err := Finalize(path); err != nil {
		t.Fatal(err)
	}
	recordertest.DecodesClean(t, path)
	p := ffprobe(t, path)
	if len(p.Streams) != 2 {
		t.Fatalf("streams %v", p.codecs())
	}
	// All but the frames still held for interleaving when it was killed.
	if d := p.duration(t); d < 3*time.Second || d > 4*time.Second {
		t.Fatalf("duration %v", d)
	}
}

// A file cut anywhere (in a block, a cluster's header, at an element's
// edge) is made playable by Finalize, which keeps every whole frame.
func TestFinalizeCutFile(t *testing.T) {
	leaktest.Check(t)
	recordertest.NeedFFmpeg(t)
	dir := t.TempDir()
	r := startRecording(t, dir)
	defer func() { _, _ = r.Close(context.Background()) }()
	data, err := os.ReadFile(filepath.Join(dir, "gil.webm"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := r.Files(context.Background())
	if err != nil || len(files) != 1 {
		t.Fatalf("files %+v: %v", files, err)
	}
	firstFrame := r.start.Add(files[0].Start) // on the wall clock
	for _, cut := range []int{len(data), len(data) - 1, len(data) - 100, len(data) * 3 / 4, len(data) / 2, len(data) / 3} {
		path := filepath.Join(t.TempDir(), "cut.webm")
		if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		ext, err := Finalize(path)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		recordertest.DecodesClean(t, path)
		d := ffprobe(t, path).duration(t)
		if d <= 0 {
			t.Fatalf("cut at %d: duration %v", cut, d)
		}
		// What Finalize tells of the file is what a player finds in it.
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if (ext.Duration-d).Abs() > time.Millisecond || ext.Size != st.Size() || !ext.Start.Equal(firstFrame) ||
			!ext.End().Equal(firstFrame.Add(ext.Duration)) {
			t.Fatalf("cut at %d: Finalize says %+v (ends %v); the file plays %v from %v and has %d bytes",
				cut, ext, ext.End(), d, firstFrame, st.Size())
		}
		// Finalize again changes nothing.
		before, _ := os.ReadFile(path)
		if _, err := Finalize(path); err != nil {
			t.Fatal(err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Fatalf("cut at %d: a second Finalize changed the file", cut)
		}
	}
}

func TestFinalizeRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"empty":   nil,
		"text":    []byte("not a recording at all"),
		"ivf":     readFile(t, "vp8.ivf"),
		"header":  readFile(t, "vp8.ivf")[:4],
		"ebmlish": {0x1A, 0x45, 0xDF, 0xA3, 0x81, 0x00},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Finalize(path); err == nil {
			t.Fatalf("%s: Finalize accepted it", name)
		}
		if after, _ := os.ReadFile(path); string(after) != string(data) {
			t.Fatalf("%s: Finalize changed a file it refused", name)
		}
	}
	if _, err := Finalize(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Finalize of a missing file succeeded")
	}
}

// Files lists a file while it is written, and what Close returned after.
func TestFilesWhileRecording(t *testing.T) {
	leaktest.Check(t)
	r := startRecording(t, t.TempDir())
	ctx := context.Background()
	files, err := r.Files(ctx)
	if err != nil || len(files) != 1 || files[0].Name != "gil.webm" || files[0].Size == 0 || files[0].Duration < 3*time.Second || !files[0].Writing {
		t.Fatalf("Files while recording = %+v, %v", files, err)
	}
	closed, err := r.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Files(ctx)
	if err != nil || len(after) != 1 || after[0].Name != closed[0].Name || after[0].Size != closed[0].Size || after[0].Size < files[0].Size ||
		after[0].Writing || closed[0].Writing {
		t.Fatalf("Files after Close = %+v, %v; Close returned %+v", after, err, closed)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.Files(canceled); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Files with a canceled context: %v", err)
	}
}
