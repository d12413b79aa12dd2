package actors

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/persistence/etcdstore/etcdtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// TestLeaseLossEndsRecording: a cluster node records a room when etcd
// ends its lease (a cut longer than the lease). The node stops its rooms
// at once, as the server does; its writer closes its files, though none of
// its writes is accepted any more. The node that takes the room over
// closes the recording: failed, with node-lost. Another node cannot list
// the lost node's files; the node itself, registered again, finalizes and
// lists them.
func TestLeaseLossEndsRecording(t *testing.T) {
	for _, tc := range []struct {
		name string
		same bool // the room is taken over by the node that lost it
	}{{"by another node", false}, {"by the same node", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			endpoint, _ := etcdtest.Start(t)
			storeA := clusterNode(t, endpoint, "node-a")
			a, dir := newRecordingEnv(t, func(c *Config) {
				c.Store, c.Owners = storeA, storeOwners{storeA}
				c.Recording.NodeID = "node-a"
			})
			createRoom(t, a, "studio", &actorpb.ConfigPatch{RecordingEnabled: ptr(true)})
			pub := joinClient(t, a, "studio", "pub", RolePublisher)
			video, _ := pub.publishAV()
			rec, err := a.rooms.StartRecording(ctx, "studio", RecordingOptions{})
			if err != nil {
				t.Fatal(err)
			}
			from := video.Sent()
			poll.Until(t, "a second of video written", func() bool {
				got, err := a.rooms.CurrentRecording(ctx, RecordingID(rec.Id))
				return err == nil && len(got.Files) == 1 && got.Files[0].Size > 0 && video.Sent() > from+100
			})

			// etcd ends node-a's lease, as when it expires after a cut; the
			// node stops its rooms when it hears of it.
			lease, err := storeA.Register(ctx)
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
			if err := a.rooms.DropAll(ctx); err != nil {
				t.Fatal(err)
			}
			poll.Until(t, "node-a's rooms stopped", func() bool { return a.rooms.Live() == 0 })
			if got, err := storeA.GetRecording(ctx, rec.Id); err != nil || recordingEnded(got) {
				t.Fatalf("a recording ended by a node without its lease: %v %v", got, err)
			}

			taker := a.rooms
			if tc.same {
				poll.Until(t, "node-a heard its lease ended", func() bool {
					select {
					case <-lease.Done():
						return true
					default:
						return false
					}
				})
				if _, err := storeA.Register(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				taker = clusterRooms(t, clusterNode(t, endpoint, "node-b"), clock.System{})
			}
			if err := taker.TakeOver(ctx, "studio"); err != nil {
				t.Fatal(err)
			}
			var got *recordpb.Recording
			poll.Until(t, "the recording ended", func() bool {
				got, err = taker.Recording(ctx, RecordingID(rec.Id))
				return err == nil && recordingEnded(got)
			})
			if got.Status != recordpb.RecordingStatus_RECORDING_STATUS_FAILED || got.EndReason != RecordingNodeLost || got.EndedAt == nil {
				t.Fatalf("a lost node's recording after the takeover: %v", got)
			}
			entries, err := os.ReadDir(filepath.Join(dir, rec.Id))
			if err != nil || len(entries) != 1 {
				t.Fatalf("node-a's files: %v %v", entries, err)
			}
			if !tc.same {
				return
			}
			info, err := entries[0].Info()
			if err != nil || len(got.Files) != 1 || got.Files[0].Name != entries[0].Name() || got.Files[0].Size != uint64(info.Size()) {
				t.Fatalf("files listed %v, on disk %v (%v)", got.Files, info, err)
			}
		})
	}
}
