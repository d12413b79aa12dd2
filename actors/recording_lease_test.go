package actors

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc/recorder"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// clusterRecordingEnv is a recording node of a cluster: its own media,
// its own recordings directory, the cluster's store and ownership.
func clusterRecordingEnv(t *testing.T, endpoint, node string) (*testEnv, string, *etcdstore.Store) {
	t.Helper()
	store := clusterNode(t, endpoint, node)
	env, dir := newRecordingEnv(t, func(c *Config) {
		c.Store, c.Owners = store, storeOwners{store}
		c.Recording.NodeID = node
	})
	return env, dir, store
}

// clusterRecording is a recording that node-a of a cluster runs: of the
// room studio, where pub publishes video (and audio).
type clusterRecording struct {
	endpoint string
	env      *testEnv
	dir      string
	store    *etcdstore.Store
	rec      *recordpb.Recording
	id       RecordingID
	video    *rtctest.Sender
	from     uint32 // the video packets sent when the recording started
}

// startClusterRecording starts an etcd, node-a on it, and a recording of
// a publisher on node-a.
func startClusterRecording(t *testing.T) clusterRecording {
	t.Helper()
	var c clusterRecording
	c.endpoint, _ = etcdtest.Start(t)
	c.env, c.dir, c.store = clusterRecordingEnv(t, c.endpoint, "node-a")
	createRoom(t, c.env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	pub := joinClient(t, c.env, "studio", "pub", RolePublisher)
	c.video, _ = pub.publishAV()
	rec, err := c.env.rooms.StartRecording(context.Background(), "studio", RecordingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.rec, c.id, c.from = rec, RecordingID(rec.Id), c.video.Sent()
	return c
}

// takeOverRecording has taker take the room studio over and returns the
// recording id once it goes on there as its part 2.
func takeOverRecording(t *testing.T, taker *testEnv, id RecordingID) *recordpb.Recording {
	t.Helper()
	ctx := context.Background()
	if err := taker.rooms.TakeOver(ctx, "studio"); err != nil {
		t.Fatal(err)
	}
	var got *recordpb.Recording
	poll.Until(t, "the recording going on as part 2", func() bool {
		var err error
		got, err = taker.rooms.Recording(ctx, id)
		return err == nil && got.Part == 2
	})
	return got
}

// endLease has etcd end node's lease, as when it expires after a cut,
// and stops the node's rooms, as the node does when it hears of it. It
// returns the lease that ended.
func endLease(t *testing.T, endpoint string, node *testEnv, store *etcdstore.Store) *etcdstore.Lease {
	t.Helper()
	ctx := context.Background()
	lease, err := store.Register(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(lease.ID())); err != nil {
		t.Fatal(err)
	}
	if err := node.rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the node's rooms stopped", func() bool { return node.rooms.Live() == 0 })
	return lease
}

// TestLeaseLossContinuesRecording: a cluster node records a room when
// etcd ends its lease (a cut longer than the lease). The node stops its
// rooms at once, as the server does; its writer closes its files, though
// none of its writes is accepted any more. The node that takes the room
// over (another, or the same one registered again) goes on with the same
// recording as its part 2: the record lists part 1's file on node-a and
// part 2's on the new owner, a recording-started event says part 2, and
// the recording completes when it is stopped, with every part's files.
func TestLeaseLossContinuesRecording(t *testing.T) {
	for _, tc := range []struct {
		name string
		same bool // the room is taken over by the node that lost it
	}{{"by another node", false}, {"by the same node", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			c := startClusterRecording(t)
			endpoint, a, dirA, storeA, rec, video, id, from := c.endpoint, c.env, c.dir, c.store, c.rec, c.video, c.id, c.from
			var err error
			var stored *recordpb.Recording
			poll.Until(t, "a second of video written, its file listed", func() bool {
				got, err := a.rooms.CurrentRecording(ctx, id)
				if err != nil || len(got.Files) != 1 || got.Files[0].Size == 0 || video.Sent() < from+100 {
					return false
				}
				stored, err = storeA.GetRecording(ctx, rec.Id)
				return err == nil && len(stored.Files) == 1
			})
			part1 := stored.Files[0]
			if part1.Part != 1 || part1.NodeId != "node-a" || !part1.Writing || stored.Part != 1 {
				t.Fatalf("the file listed as it opened: %v in %v", part1, stored)
			}
			if !tc.same {
				// The record takes the file's size as it grows (every
				// relistEvery), so that another node lists it near its
				// size once node-a is lost.
				opened := part1.Size // its header
				poll.Until(t, "the record to list the file's size so far", func() bool {
					stored, err = storeA.GetRecording(ctx, rec.Id)
					return err == nil && len(stored.Files) == 1 && stored.Files[0].Size > opened && stored.Files[0].DurationMs > 0
				})
				part1 = stored.Files[0]
			}

			lease := endLease(t, endpoint, a, storeA)
			if got, err := storeA.GetRecording(ctx, rec.Id); err != nil || recordingEnded(got) {
				t.Fatalf("a recording ended by a node without its lease: %v %v", got, err)
			}

			taker, takerNode, takerDir := a, "node-a", dirA
			if tc.same {
				poll.Closed(t, "node-a to hear its lease ended", lease.Done())
				if _, err := storeA.Register(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				taker, takerDir, _ = clusterRecordingEnv(t, endpoint, "node-b")
				takerNode = "node-b"
			}
			got := takeOverRecording(t, taker, id)
			if n := testutil.ToFloat64(taker.rooms.metrics.recordingParts); n != 1 {
				t.Fatalf("troupe_recording_parts_continued_total on %s = %v, want 1", takerNode, n)
			}
			if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_RECORDING || got.NodeId != takerNode || got.EndedAt != nil ||
				len(got.Files) != 1 || got.Files[0].Name != part1.Name || got.Files[0].NodeId != "node-a" ||
				got.Files[0].Part != 1 || got.Files[0].Writing {
				t.Fatalf("the recording taken over: %v", got)
			}
			info, err := os.Stat(filepath.Join(dirA, rec.Id, part1.Name))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.same && got.Files[0].Size != uint64(info.Size()):
				t.Fatalf("part 1's file, on this node, listed with %d bytes; it has %d", got.Files[0].Size, info.Size())
			case !tc.same && (got.Files[0].Size < part1.Size || got.Files[0].Size > uint64(info.Size())):
				t.Fatalf("part 1's file, on the lost node, listed with %d bytes; %d listed before, %d on its disk", got.Files[0].Size, part1.Size, info.Size())
			}

			// The publisher comes back, to the room's new owner: its file
			// is part 2's, named so, on that node.
			pub2 := joinClient(t, taker, "studio", "pub", RolePublisher)
			video2, _ := pub2.publishAV()
			from = video2.Sent()
			poll.Until(t, "part 2's file written", func() bool {
				cur, err := taker.rooms.CurrentRecording(ctx, id)
				if err != nil || video2.Sent() < from+100 {
					return false
				}
				i := slices.IndexFunc(cur.Files, func(f *recordpb.RecordingFile) bool { return f.Part == 2 })
				return i >= 0 && cur.Files[i].Size > 0 && cur.Files[i].Writing && cur.Files[i].NodeId == takerNode
			})
			if _, err := taker.rooms.StopRecording(ctx, id); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, "the recording completed", func() bool {
				got, err = taker.rooms.Recording(ctx, id)
				return err == nil && recordingEnded(got)
			})
			if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_COMPLETED || got.Part != 2 || len(got.Files) != 2 {
				t.Fatalf("the recording stopped: %v", got)
			}
			f2 := got.Files[1]
			if f2.Part != 2 || f2.NodeId != takerNode || f2.Writing || f2.Size == 0 || !strings.HasSuffix(f2.Name, "-part2.webm") {
				t.Fatalf("part 2's file: %v", f2)
			}
			if info, err := os.Stat(filepath.Join(takerDir, rec.Id, f2.Name)); err != nil || uint64(info.Size()) != f2.Size {
				t.Fatalf("part 2's file on %s: %v %v, listed %d bytes", takerNode, info, err, f2.Size)
			}
			var started []*recordpb.WebhookEvent
			for _, e := range queuedDeliveries(t, storeA) { // the cluster's
				if e.Event == "recording-started" {
					started = append(started, e)
				}
			}
			if len(started) != 2 || !strings.Contains(string(started[1].Data), `"part":2`) {
				t.Fatalf("recording-started events: %v", started)
			}

			// The delete removes the record and the files of the room's
			// owner; those of another node go at its request, which the
			// HTTP edge sends once the record is gone.
			if _, err := taker.rooms.DeleteRecording(ctx, id); err != nil {
				t.Fatalf("delete the recording: %v", err)
			}
			if _, err := taker.rooms.Recording(ctx, id); !errors.Is(err, ErrRecordingNotFound) {
				t.Fatalf("the recording after its delete: %v", err)
			}
			if _, err := os.Stat(filepath.Join(takerDir, rec.Id)); !os.IsNotExist(err) {
				t.Fatalf("its files on %s after the delete: %v", takerNode, err)
			}
			if err := a.rooms.RemoveDeletedRecordingFiles(ctx, id); err != nil {
				t.Fatalf("node-a removes its part's files: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dirA, rec.Id)); !os.IsNotExist(err) {
				t.Fatalf("its files on node-a: %v", err)
			}
		})
	}
}

// TestClusterStartFinalizesLostParts: a cluster node killed while it
// wrote a recording's part leaves its files cut short, and the mark of a
// part being written. At its next start it finalizes them (their record
// is the room owner's, which went on with the recording) and drops the
// mark; a recording's directory without the mark is left as it is.
func TestClusterStartFinalizesLostParts(t *testing.T) {
	env, dir := newRecordingEnv(t, nil)
	createRoom(t, env, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
	pub := joinClient(t, env, "studio", "pub", RolePublisher)
	done := recordFor(t, env, pub)
	pub.leave()
	env.stop()
	whole, err := os.ReadFile(filepath.Join(dir, done.Id, done.Files[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	cut := whole[:len(whole)*2/3]
	lost, kept := filepath.Join(dir, "rec_lost", "PA_1.webm"), filepath.Join(dir, "rec_kept", "PA_1.webm")
	for _, path := range []string{lost, kept} {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, cut, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "rec_lost", openMarker), nil, 0o640); err != nil {
		t.Fatal(err)
	}

	endpoint, _ := etcdtest.Start(t)
	putEndedRecordings(t, endpoint, "rec_lost", "rec_kept") // their owners' records
	store := clusterNode(t, endpoint, "node-a")
	runRooms(t, Config{Store: store, Owners: storeOwners{store}, Recording: RecordingConfig{Dir: dir, NodeID: "node-a"}})

	if _, err := os.Stat(filepath.Join(dir, "rec_lost", openMarker)); !os.IsNotExist(err) {
		t.Fatalf("the mark of a lost part after the start: %v", err)
	}
	f, err := os.Open(lost)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := recorder.PlayablePrefix(f); err != nil || n != info.Size() || info.Size() > int64(len(cut)) {
		t.Fatalf("the lost part's file after the start: %d bytes, %d of them whole (%v); %d when cut", info.Size(), n, err, len(cut))
	}
	if after, err := os.ReadFile(lost); err != nil || bytes.Equal(after, cut[:len(after)]) {
		t.Fatalf("the lost part's file was not finalized (no duration, no cues written): %v", err)
	}
	if after, err := os.ReadFile(kept); err != nil || !bytes.Equal(after, cut) {
		t.Fatalf("a directory without the mark was changed: %v", err)
	}
}
