package recorder

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/troupe-media/troupe/internal/leaktest"
	"github.com/troupe-media/troupe/rtc/recorder/recordertest"
)

// A recorder that writes a later part of a recording names its files by
// the part, reports each as it opens, and places their frames on the
// recording's clock (its Origin), not from zero.
func TestRecordLaterPart(t *testing.T) {
	leaktest.Check(t)
	opus := loadOgg(t, "opus.ogg")
	var (
		mu     sync.Mutex
		opened []string
	)
	origin := epoch.Add(-30 * time.Second) // the recording began 30 s before this part
	files, _ := record(t, Config{Part: 2, Origin: origin, OnFile: func(f File) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, f.Name)
	}}, []source{
		{info: opusInfo("una", "a1"), frames: opus, close: true},
		{info: opusInfo("una", "a2"), frames: opus, offset: span(opus) + time.Second, close: true},
	}, impair{})
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"una-part2.webm", "una-part2-2.webm"}; !slices.Equal(names, want) || !slices.Equal(opened, want) {
		t.Fatalf("files %v, reported opened %v, want %v", names, opened, want)
	}
	if files[0].Start < 30*time.Second || files[0].Start > 31*time.Second {
		t.Fatalf("the part's first file starts at %v on the recording's clock, want 30 s", files[0].Start)
	}
	if _, err := New(Config{Dir: t.TempDir(), Part: -1}); err == nil {
		t.Fatal("a negative part was accepted")
	}
}

// A file being written has a playable prefix: its header and every whole
// block, however far the writer has gone into the next element.
func TestPlayablePrefix(t *testing.T) {
	leaktest.Check(t)
	dir := t.TempDir()
	r := startRecording(t, dir)
	defer r.Close(t.Context()) //nolint:errcheck // the files are not checked
	live, err := os.Open(filepath.Join(dir, "gil.webm"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	n, err := PlayablePrefix(live)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(live.Name())
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n > int64(len(data)) {
		t.Fatalf("prefix %d of a file of %d bytes", n, len(data))
	}
	check := func(name string, b []byte) int64 {
		t.Helper()
		path := filepath.Join(t.TempDir(), name+".webm")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := PlayablePrefix(f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// What the prefix holds reads as a whole recording: its header,
		// clusters and blocks, to its last byte.
		if got > 0 {
			if err := os.Truncate(path, got); err != nil {
				t.Fatal(err)
			}
			h, err := scanHeader(f, false)
			if err != nil {
				t.Fatalf("%s: the prefix's header: %v", name, err)
			}
			if s := scanClusters(f, h, got); s.end != got || s.lastTC <= 0 {
				t.Fatalf("%s: the prefix of %d bytes reads to %d, its last block at %d ms", name, got, s.end, s.lastTC)
			}
		}
		return got
	}
	if got := check("whole", data[:n]); got != n {
		t.Fatalf("the prefix alone: prefix %d, want %d", got, n)
	}
	// Cut in the middle of blocks and of a cluster's header: the prefix
	// stops at the last whole element before the cut.
	for _, cut := range []int64{n * 3 / 4, n / 2, n/2 + 3} {
		if got := check("cut", data[:cut]); got <= 0 || got > cut {
			t.Fatalf("cut at %d: prefix %d", cut, got)
		}
	}
	h, err := scanHeader(live, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := check("header", data[:h.firstCluster+2]); got != 0 {
		t.Fatalf("a file whose first cluster has barely begun: prefix %d, want 0", got)
	}
	if _, err := PlayablePrefix(mustOpen(t, writeTemp(t, []byte("not a recording")))); err == nil {
		t.Fatal("the prefix of a file that is no recording")
	}
	if recordertest.Enabled() {
		recordertest.DecodesClean(t, writeTemp(t, data[:n]))
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.webm")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
