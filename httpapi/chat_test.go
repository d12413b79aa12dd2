package httpapi

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
)

func TestChat(t *testing.T) {
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"talk","name":"Talk"}`)
	a := s.dialData(t, "talk", "alice")
	b := s.dialData(t, "talk", "bob")

	// A chat message on a data channel is kept and sent to everyone over
	// signaling, the sender included.
	if err := a.dcs.reliable.SendText(`{"topic":"chat","data":"hello all"}`); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*dataPeer{a, b} {
		m := c.waitMsg(msgChat, nil)["chat"].(map[string]any)
		if m["seq"] != 1.0 || m["text"] != "hello all" || m["identity"] != "alice" || m["name"] != "alice name" || m["participant_id"] != a.ParticipantID() {
			t.Fatalf("%s: chat %v", c.name, m)
		}
	}
	r := s.do(t, http.MethodPost, "/api/v1/rooms/talk/chat", `{"text":"from the host","name":"Host"}`)
	mustStatus(t, r, http.StatusCreated)
	if m := r.json(t); m["seq"] != 2.0 || m["participant_id"] != nil || m["name"] != "Host" {
		t.Fatalf("POST chat: %v", m)
	}
	b.waitMsg(msgChat, func(m map[string]any) bool { return m["chat"].(map[string]any)["seq"] == 2.0 })

	// A joiner gets the recent chat in joined.
	late := s.dialWS(t, "carol", s.joinToken(t, "talk", "carol", auth.RoleSubscriber))
	chat := late.waitMsg(msgJoined, nil)["chat"].([]any)
	if len(chat) != 2 || chat[0].(map[string]any)["text"] != "hello all" || chat[1].(map[string]any)["text"] != "from the host" {
		t.Fatalf("joined chat %v", chat)
	}

	// The session's chat, a page at a time.
	sid := s.do(t, http.MethodGet, "/api/v1/rooms/talk", "").json(t)["active_session_id"].(string)
	r = s.do(t, http.MethodGet, "/api/v1/sessions/"+sid+"/chat?limit=1&offset=1", "")
	mustStatus(t, r, http.StatusOK)
	page := r.json(t)
	msgs := page["messages"].([]any)
	if page["total"] != 2.0 || page["limit"] != 1.0 || page["offset"] != 1.0 || len(msgs) != 1 || msgs[0].(map[string]any)["text"] != "from the host" {
		t.Fatalf("chat page %v", page)
	}
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/sessions/ses_nope/chat", ""), http.StatusNotFound)
	mustStatus(t, s.do(t, http.MethodGet, "/api/v1/sessions/"+sid+"/chat?limit=0", ""), http.StatusUnprocessableEntity)

	// Bad chat input changes nothing.
	for _, body := range []string{`{}`, `{"text":""}`, `{"text":"  "}`, `{"text":"x","extra":1}`} {
		if r := s.do(t, http.MethodPost, "/api/v1/rooms/talk/chat", body); r.status != http.StatusUnprocessableEntity {
			t.Errorf("POST chat %s: %d %s", body, r.status, r.body)
		}
	}
	if r := s.do(t, http.MethodPost, "/api/v1/rooms/talk/chat", `{"text":1}`); !r.isTypeError(t, "text") {
		t.Errorf("POST chat with a number for text: %d %s", r.status, r.body)
	}

	// With chat disabled, chat is refused and its sender told why; other
	// topics still flow.
	mustStatus(t, s.do(t, http.MethodPatch, "/api/v1/rooms/talk", `{"config":{"chat_enabled":false}}`), http.StatusOK)
	if err := a.dcs.reliable.SendText(`{"topic":"chat","data":"anyone?"}`); err != nil {
		t.Fatal(err)
	}
	if e := a.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == "chat" }); e["code"] != codeChatDisabled {
		t.Fatalf("alice told %v", e)
	}
	if err := a.dcs.reliable.SendText(`{"topic":"game","data":"move"}`); err != nil {
		t.Fatal(err)
	}
	if got := b.waitData(t, 1); got[0]["topic"] != "game" {
		t.Fatalf("bob received %v", got)
	}
	r = s.do(t, http.MethodPost, "/api/v1/rooms/talk/chat", `{"text":"x"}`)
	if r.status != http.StatusForbidden || r.errorCode(t) != codeChatDisabled {
		t.Fatalf("POST chat with chat disabled: %d %s", r.status, r.body)
	}
	if got := s.do(t, http.MethodGet, "/api/v1/sessions/"+sid+"/chat", "").json(t)["total"]; got != 2.0 {
		t.Fatalf("chat total %v after refusals, want 2", got)
	}
	if n := b.count(msgChat); n != 2 {
		t.Fatalf("bob got %d chat messages, want 2", n)
	}
	// A room with no session has nowhere to keep chat.
	s.createRoom(t, `{"id":"empty","name":"Empty"}`)
	r = s.do(t, http.MethodPost, "/api/v1/rooms/empty/chat", `{"text":"x"}`)
	if r.status != http.StatusConflict || r.errorCode(t) != codeNoActiveSession {
		t.Fatalf("POST chat to a room without a session: %d %s", r.status, r.body)
	}
}

// A participant's chat beyond its rate is refused, and so is any chat
// beyond the session's cap: nothing refused is kept or sent.
func TestChatLimits(t *testing.T) {
	// The clock stands still until advanced: no chat token comes back by
	// itself.
	clk := clock.NewManual(time.Now())
	s := buildStack(t, nil, func(c *actors.Config) {
		c.Clock = clk
		c.Chat = actors.ChatConfig{Burst: 3, MaxPerSession: 5}
	}, true)
	s.createRoom(t, `{"id":"limits","name":"Limits"}`)
	a := s.dialData(t, "limits", "alice")
	b := s.dialData(t, "limits", "bob")
	for i := range 4 {
		if err := a.dcs.reliable.SendText(fmt.Sprintf(`{"topic":"chat","data":"message %d"}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	e := a.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == "chat" })
	if e["code"] != codeRateLimited || e["retry_after_ms"] == nil {
		t.Fatalf("alice told %v, want rate_limited with retry_after_ms", e)
	}
	b.waitMsg(msgChat, func(m map[string]any) bool { return m["chat"].(map[string]any)["seq"] == 3.0 })

	// The server's messages have no rate, but fill the session.
	for range 2 {
		mustStatus(t, s.do(t, http.MethodPost, "/api/v1/rooms/limits/chat", `{"text":"from the host"}`), http.StatusCreated)
	}
	r := s.do(t, http.MethodPost, "/api/v1/rooms/limits/chat", `{"text":"one too many"}`)
	if r.status != http.StatusConflict || r.errorCode(t) != codeChatFull {
		t.Fatalf("POST chat to a full session: %d %s", r.status, r.body)
	}
	clk.Advance(time.Minute) // alice's bucket is full again
	if err := a.dcs.reliable.SendText(`{"topic":"chat","data":"still there?"}`); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "alice told the chat is full", func() bool {
		for _, m := range a.messages(msgError) {
			if m["code"] == codeChatFull && m["request"] == "chat" {
				return true
			}
		}
		return false
	})
	sid := s.do(t, http.MethodGet, "/api/v1/rooms/limits", "").json(t)["active_session_id"].(string)
	if got := s.do(t, http.MethodGet, "/api/v1/sessions/"+sid+"/chat", "").json(t)["total"]; got != 5.0 {
		t.Fatalf("chat total %v, want 5", got)
	}
	if n := b.count(msgChat); n != 5 {
		t.Fatalf("bob got %d chat messages, want 5", n)
	}
}
