package actors

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/internal/poll"
)

// A room that restarts after a panic numbers its chat on from its store,
// and a late joiner gets the session's recent messages, the last
// ChatHistoryOnJoin of them.
func TestChatSurvivesRestartAndReachesJoiner(t *testing.T) {
	env := newMediaEnv(t, nil)
	ctx := context.Background()
	createRoom(t, env, "r", nil)
	alice := joinClient(t, env, "r", "alice", RolePublisher)
	for i := 1; i <= ChatHistoryOnJoin+5; i++ {
		m, err := env.rooms.SendChat(ctx, "r", "Host", fmt.Sprintf("message %d", i))
		if err != nil || m.Seq != uint64(i) {
			t.Fatalf("chat %d: %+v, %v", i, m, err)
		}
	}
	got := waitEvent(t, alice, func(s SignalChat) bool { return s.Message.Seq == ChatHistoryOnJoin+5 })
	if got.Message.Name != "Host" || got.Message.ParticipantID != "" {
		t.Fatalf("alice got %+v", got.Message)
	}

	crash(env, "r")
	var m ChatMessage
	poll.Until(t, "the restarted room takes chat", func() bool {
		var err error
		m, err = env.rooms.SendChat(ctx, "r", "Host", "after the restart")
		return err == nil
	})
	if want := uint64(ChatHistoryOnJoin + 6); m.Seq != want {
		t.Fatalf("seq after a restart %d, want %d", m.Seq, want)
	}
	bob := joinClient(t, env, "r", "bob", RolePublisher)
	recent := bob.info.Chat
	if len(recent) != ChatHistoryOnJoin || recent[0].Seq != 7 || recent[len(recent)-1].Text != "after the restart" {
		t.Fatalf("bob joined with %d messages, from %d to %q", len(recent), recent[0].Seq, recent[len(recent)-1].Text)
	}
	msgs, total, err := env.rooms.SessionChat(ctx, SessionID(activeSession(t, env, "r").Id), 10, 50)
	if err != nil || total != ChatHistoryOnJoin+6 || len(msgs) != 6 || msgs[0].Seq != 51 {
		t.Fatalf("SessionChat page: %d of %d, %v", len(msgs), total, err)
	}

	// Chat disabled: refused, nothing kept.
	if _, err := env.rooms.Update(ctx, "r", &actorpb.RoomPatch{Config: &actorpb.ConfigPatch{ChatEnabled: ptr(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.rooms.SendChat(ctx, "r", "Host", "x"); !errors.Is(err, ErrChatDisabled) {
		t.Fatalf("chat with chat disabled: %v", err)
	}
	var ve *ValidationError
	if _, err := env.rooms.SendChat(ctx, "r", "Host", ""); !errors.As(err, &ve) {
		t.Fatalf("empty chat: %v", err)
	}
}
