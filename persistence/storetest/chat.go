package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/internal/recordtest"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var chatCases = []testCase{
	{"PagesInOrder", testChatPages},
	{"Invalid", testChatInvalid},
}

func chatMessage(session string, seq uint64) *recordpb.ChatMessage {
	return &recordpb.ChatMessage{
		SessionId: session, RoomId: "room_1", Seq: seq,
		ParticipantId: "PA_1", Identity: "alice", Name: "Alice",
		Text: fmt.Sprintf("message %d", seq), SentAt: recordtest.At(int(seq)),
	}
}

func listChat(t *testing.T, b persistence.Backend, q persistence.ChatQuery) ([]uint64, int) {
	t.Helper()
	page, err := b.ListChat(context.Background(), q)
	if err != nil {
		t.Fatalf("ListChat(%+v): %v", q, err)
	}
	var seqs []uint64
	for _, m := range page.Messages {
		if m.SessionId != q.SessionID {
			t.Fatalf("ListChat(%+v) has a message of session %q", q, m.SessionId)
		}
		seqs = append(seqs, m.Seq)
	}
	return seqs, page.Total
}

// A session's chat reads back in seq order, a page at a time, after a
// reopen too; sessions whose ids share a prefix keep theirs apart; 300
// messages order by number, not by their text.
func testChatPages(t *testing.T, h *harness) {
	b, dir := h.fresh(t)
	// Written newest first, 50 a write (etcd bounds a transaction's
	// operations).
	for hi := uint64(300); hi >= 50; hi -= 50 {
		var w persistence.Writes
		for seq := hi; seq > hi-50; seq-- {
			w.Chat = append(w.Chat, chatMessage("ses_1", seq))
		}
		apply(t, b, w)
	}
	apply(t, b, persistence.Writes{Chat: []*recordpb.ChatMessage{chatMessage("ses_10", 1), chatMessage("ses_1/x", 1)}})
	// The write is with its session's record in one batch too.
	apply(t, b, persistence.Writes{
		Sessions: []*recordpb.Session{recordtest.Session("ses_2", "room_1", inProgress, 0)},
		Chat:     []*recordpb.ChatMessage{chatMessage("ses_2", 1)},
	})
	b = h.cycle(t, b, dir)
	first := chatMessage("ses_1", 1)
	page, err := b.ListChat(context.Background(), persistence.ChatQuery{SessionID: "ses_1", Limit: 1})
	if err != nil || page.Total != 300 || len(page.Messages) != 1 {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	wantEqual(t, "first message", page.Messages[0], first)
	for _, c := range []struct {
		q         persistence.ChatQuery
		from, n   uint64
		wantTotal int
	}{
		{persistence.ChatQuery{SessionID: "ses_1", Limit: 100}, 1, 100, 300},
		{persistence.ChatQuery{SessionID: "ses_1", Limit: 100, Offset: 250}, 251, 50, 300},
		{persistence.ChatQuery{SessionID: "ses_1", Offset: 295}, 296, 5, 300},
		{persistence.ChatQuery{SessionID: "ses_1", Offset: 300}, 0, 0, 300},
		{persistence.ChatQuery{SessionID: "ses_1", Offset: -5, Limit: 2}, 1, 2, 300},
		{persistence.ChatQuery{SessionID: "ses_10"}, 1, 1, 1},
		{persistence.ChatQuery{SessionID: "ses_1/x"}, 1, 1, 1},
		{persistence.ChatQuery{SessionID: "ses_2"}, 1, 1, 1},
		{persistence.ChatQuery{SessionID: "ses_none"}, 0, 0, 0},
	} {
		seqs, total := listChat(t, b, c.q)
		if total != c.wantTotal || uint64(len(seqs)) != c.n {
			t.Fatalf("ListChat(%+v) = %v of %d, want %d from %d of %d", c.q, seqs, total, c.n, c.from, c.wantTotal)
		}
		for i, s := range seqs {
			if s != c.from+uint64(i) {
				t.Fatalf("ListChat(%+v) = %v, want %d from %d", c.q, seqs, c.n, c.from)
			}
		}
	}
	if got := getSession(t, b, "ses_2"); got.Id != "ses_2" {
		t.Fatalf("the session written with its chat: %v", got)
	}
}

func testChatInvalid(t *testing.T, h *harness) {
	b, _ := h.fresh(t)
	for _, m := range []*recordpb.ChatMessage{
		{RoomId: "room_1", Seq: 1, SentAt: recordtest.At(0)},
		{SessionId: "ses_1", Seq: 1, SentAt: recordtest.At(0)},
		{SessionId: "ses_1", RoomId: "room_1", SentAt: recordtest.At(0)},
		{SessionId: "ses_1", RoomId: "room_1", Seq: 1},
	} {
		err := b.Apply(context.Background(), persistence.Writes{
			Sessions: []*recordpb.Session{recordtest.Session("ses_1", "room_1", inProgress, 0)},
			Chat:     []*recordpb.ChatMessage{m},
		})
		wantErr(t, fmt.Sprintf("Apply with chat %v", m), err, persistence.ErrInvalid)
	}
	if _, total := listChat(t, b, persistence.ChatQuery{SessionID: "ses_1"}); total != 0 {
		t.Fatalf("an invalid write left %d messages", total)
	}
	if _, err := b.GetSession(context.Background(), "ses_1"); err == nil {
		t.Fatal("an invalid write stored its session")
	}
}
