package persistence

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

// event returns a delivery of a participant-joined event created at
// recordtest.Epoch plus createdSec.
func event(id, room, endpoint string, createdSec int) *recordpb.WebhookEvent {
	return &recordpb.WebhookEvent{
		Id:        id,
		Event:     "participant-joined",
		CreatedAt: recordtest.At(createdSec),
		RoomId:    room,
		SessionId: "ses_" + room,
		Data:      []byte(`{"identity":"alice"}`),
		Endpoint:  endpoint,
		Secret:    "s3cret",
	}
}

const hookA = "https://a.example/hook"

func TestOutboxCorruptEntry(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, "")
	e := event("whd_1", "r1", hookA, 0)
	mustApply(t, s, Writes{Events: []*recordpb.WebhookEvent{e}})
	other := proto.Clone(e).(*recordpb.WebhookEvent)
	other.Seq = 99
	val, err := encodeWebhookEvent(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set(outboxKey("r1", hookA, e.Seq), val, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OutboxHeads(ctx); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OutboxHeads = %v, want ErrCorrupt", err)
	}
	if _, err := s.OutboxHead(ctx, "r1", hookA); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("OutboxHead = %v, want ErrCorrupt", err)
	}
}

func TestOutboxKeyParts(t *testing.T) {
	for _, room := range []string{"r", "a/b%c", "room_abc123"} {
		key := outboxKey(room, hookA, 1<<40+5)
		queue, seq, err := outboxKeyParts(key)
		if err != nil || seq != 1<<40+5 || string(queue) != string(outboxQueuePrefix(room, hookA)) {
			t.Errorf("outboxKeyParts(%q) = %q, %d, %v", key, queue, seq, err)
		}
	}
	for _, bad := range []string{"outbox/", "outbox/r/0123456789abcdef/1234567", "outbox/r/0123456789abcdefX12345678"} {
		if _, _, err := outboxKeyParts([]byte(bad)); err == nil {
			t.Errorf("outboxKeyParts(%q): no error", bad)
		}
	}
}
