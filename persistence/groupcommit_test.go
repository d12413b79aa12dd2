package persistence

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/troupe-media/troupe/persistence/internal/recordtest"
)

// walSyncFS counts the fsyncs of write-ahead log files (*.log). With
// syncTime set, each of them also takes that long, as on a disk: a test
// directory's fsync may return in microseconds, and then whether writers
// overlap one depends on how the machine schedules them.
type walSyncFS struct {
	vfs.FS
	syncs    atomic.Int64
	syncTime time.Duration
}

// synced counts an fsync and gives it a disk's duration.
func (fs *walSyncFS) synced() {
	fs.syncs.Add(1)
	if fs.syncTime > 0 {
		time.Sleep(fs.syncTime)
	}
}

func (fs *walSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walSyncFile{File: f, fs: fs}, nil
}

func (fs *walSyncFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walSyncFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *walSyncFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type walSyncFile struct {
	vfs.File
	fs *walSyncFS
}

func (f *walSyncFile) Sync() error {
	f.fs.synced()
	return f.File.Sync()
}

// SyncData is what Pebble's WAL writer calls to make a commit durable.
func (f *walSyncFile) SyncData() error {
	f.fs.synced()
	return f.File.SyncData()
}

func openCountingStore(t testing.TB, syncTime time.Duration) (*Store, *walSyncFS) {
	t.Helper()
	fs := &walSyncFS{FS: vfs.Default, syncTime: syncTime}
	s, err := Open(Config{Dir: t.TempDir(), FS: fs, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fs
}

// TestSerialPutsSyncEach shows that the counter sees every commit's fsync,
// which is what makes the concurrent test below meaningful.
func TestSerialPutsSyncEach(t *testing.T) {
	s, fs := openCountingStore(t, 0)
	const puts = 20
	before := fs.syncs.Load()
	for i := range puts {
		mustPut(t, s, recordtest.Room(fmt.Sprintf("r%d", i), active, i))
	}
	if syncs := fs.syncs.Load() - before; syncs < puts {
		t.Fatalf("%d serial synced puts caused %d WAL fsyncs, want at least %d", puts, syncs, puts)
	}
}

// TestConcurrentPutsShareFsyncs proves group commit: synced PutRoom calls
// from many goroutines share WAL fsyncs because the store holds no lock of
// its own across Commit. Each fsync takes 2 ms, as a fast disk's, so that
// writers arriving while one runs wait for the next, which a store that
// serialized its commits would give one each.
func TestConcurrentPutsShareFsyncs(t *testing.T) {
	s, fs := openCountingStore(t, 2*time.Millisecond)
	const writers = 200
	start := make(chan struct{})
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			errs <- s.PutRoom(context.Background(), recordtest.Room(fmt.Sprintf("r%03d", i), active, i))
		})
	}
	before := fs.syncs.Load()
	close(start)
	wg.Wait()
	syncs := fs.syncs.Load() - before
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("PutRoom: %v", err)
		}
	}
	t.Logf("%d concurrent synced PutRoom calls: %d WAL fsyncs (%.1f puts per fsync)",
		writers, syncs, float64(writers)/float64(max(syncs, 1)))
	if syncs == 0 {
		t.Fatal("no WAL fsync counted: the counting FS is not in the write path")
	}
	if syncs >= writers/2 {
		t.Fatalf("%d concurrent puts caused %d WAL fsyncs, want fewer than %d: commits are not grouped", writers, syncs, writers/2)
	}
	if page, err := s.ListRooms(context.Background(), RoomQuery{Limit: 1}); err != nil || page.Total != writers {
		t.Fatalf("after concurrent puts: Total %d, %v; want %d", page.Total, err, writers)
	}
	assertIndexConsistent(t, s)
}

// TestConcurrentPutsSameRoom checks that writers racing on one room id leave
// exactly one index entry per list and a correct count.
func TestConcurrentPutsSameRoom(t *testing.T) {
	s := openStore(t, "")
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			st := active
			if i%2 == 0 {
				st = ended
			}
			if err := s.PutRoom(context.Background(), recordtest.Room("same", st, i%7)); err != nil {
				t.Errorf("PutRoom: %v", err)
			}
		})
	}
	wg.Wait()
	assertIndexConsistent(t, s)
	if n := s.counts.get(all); n != 1 {
		t.Fatalf("total count = %d, want 1", n)
	}
}
