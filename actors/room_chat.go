package actors

// This file owns the room's chat: data messages on the topic "chat" (and
// POST /rooms/{id}/chat) are checked against chat_enabled, numbered and
// kept with the session, then sent to every member over signaling, in
// order; a joiner gets the session's last ChatHistoryOnJoin messages in
// its joined message.

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
)

const (
	// ChatTopic is the data message topic of chat messages.
	ChatTopic = "chat"
	// MaxChatText bounds a chat message's text, in bytes of UTF-8.
	MaxChatText = 4096
	// ChatHistoryOnJoin is how many of the session's last chat messages a
	// joiner gets.
	ChatHistoryOnJoin = 50
	// maxChatName bounds the sender name of a message the server sends.
	maxChatName = 200
)

// ChatMessage is one chat message of a session. ParticipantID and
// Identity are empty for a message the server sent.
type ChatMessage struct {
	Seq                  uint64
	ParticipantID        ParticipantID
	Identity, Name, Text string
	SentAt               time.Time
}

// SignalChat is a chat message sent in the room, the sender's own included.
type SignalChat struct{ Message ChatMessage }

func (SignalChat) isSignal() {}

// ChatFromRecord is the chat message of a stored record.
func ChatFromRecord(m *recordpb.ChatMessage) ChatMessage {
	return ChatMessage{
		Seq: m.GetSeq(), ParticipantID: ParticipantID(m.GetParticipantId()), Identity: m.GetIdentity(),
		Name: m.GetName(), Text: m.GetText(), SentAt: m.GetSentAt().AsTime(),
	}
}

// chatLog is the running session's chat as the room knows it: the last
// seq given and the messages a joiner gets. It is loaded from the store
// when first needed, so that a restarted room numbers on.
type chatLog struct {
	seq    uint64
	recent []*recordpb.ChatMessage // the last ChatHistoryOnJoin, oldest first
}

type (
	chatReceived struct {
		from rtc.DataSender
		msg  rtc.DataMessage
	}
	sendChat struct {
		name, text string
	}
	sendChatReply struct {
		msg ChatMessage
		err error
	}
)

// chatLog returns the running session's chat log, loading it if need be.
func (a *roomActor) chatLog() (*chatLog, error) {
	s := a.session
	if s == nil {
		return nil, ErrNoActiveSession
	}
	if s.chat != nil {
		return s.chat, nil
	}
	ctx, cancel := a.storeCtx()
	defer cancel()
	head, err := a.deps.cfg.Store.ListChat(ctx, persistence.ChatQuery{SessionID: s.rec.Id, Limit: 1})
	if err != nil {
		return nil, fmt.Errorf("load chat: %w", err)
	}
	tail, err := a.deps.cfg.Store.ListChat(ctx, persistence.ChatQuery{SessionID: s.rec.Id, Offset: head.Total - ChatHistoryOnJoin})
	if err != nil {
		return nil, fmt.Errorf("load chat: %w", err)
	}
	s.chat = &chatLog{seq: uint64(head.Total), recent: tail.Messages}
	return s.chat, nil
}

// recentChat is what a joiner gets: the session's last messages.
func (a *roomActor) recentChat() []ChatMessage {
	l, err := a.chatLog()
	if err != nil {
		a.log.Warn("recent chat for a joiner", "err", err)
		return nil
	}
	out := make([]ChatMessage, len(l.recent))
	for i, m := range l.recent {
		out[i] = ChatFromRecord(m)
	}
	return out
}

// validChatText checks a chat message's text.
func validChatText(text string) error {
	switch {
	case strings.TrimSpace(text) == "":
		return invalid("text", "must not be empty")
	case len(text) > MaxChatText:
		return invalid("text", "must be at most %d bytes", MaxChatText)
	case !utf8.ValidString(text):
		return invalid("text", "must be valid UTF-8")
	}
	return nil
}

// chatReceived takes a member's chat message from the relay.
func (a *roomActor) chatReceived(ctx actor.Context, m *chatReceived) {
	id := ParticipantID(m.from.ID)
	mb, ok := a.members[id]
	if !ok || mb.leaveReason != "" {
		return
	}
	err := func() error {
		switch {
		case a.room == nil || !a.room.Config.ChatEnabled:
			return ErrChatDisabled
		case !m.msg.Text:
			return fmt.Errorf("%w: a chat message is a text message", ErrBadDataMessage)
		case len(m.msg.To) > 0:
			return fmt.Errorf("%w: a chat message goes to the whole room (no to)", ErrBadDataMessage)
		}
		_, err := a.postChat(mb.info.ID, mb.info.Identity, mb.info.Name, string(m.msg.Payload))
		return err
	}()
	if err != nil {
		a.tellRefused(id, "chat", err)
	}
}

// sendChat is POST /rooms/{id}/chat: a chat message from the server.
func (a *roomActor) sendChat(m *sendChat) *sendChatReply {
	if _, err := a.current(); err != nil {
		return &sendChatReply{err: err}
	}
	if !a.room.Config.ChatEnabled {
		return &sendChatReply{err: ErrChatDisabled}
	}
	msg, err := a.postChat("", "", m.name, m.text)
	return &sendChatReply{msg: msg, err: err}
}

// postChat numbers a chat message, keeps it with the session (synced) and
// sends it to every member.
func (a *roomActor) postChat(id ParticipantID, identity, name, text string) (ChatMessage, error) {
	if err := validChatText(text); err != nil {
		return ChatMessage{}, err
	}
	l, err := a.chatLog()
	if err != nil {
		return ChatMessage{}, err
	}
	rec := &recordpb.ChatMessage{
		SessionId: a.session.rec.Id, RoomId: string(a.id), Seq: l.seq + 1,
		ParticipantId: string(id), Identity: identity, Name: name, Text: text,
		SentAt: timestamp(a.now()),
	}
	if err := a.commit(&changes{w: persistence.Writes{Chat: []*recordpb.ChatMessage{rec}}}); err != nil {
		return ChatMessage{}, fmt.Errorf("keep chat message: %w", err)
	}
	l.seq = rec.Seq
	l.recent = append(l.recent, rec)
	if n := len(l.recent) - ChatHistoryOnJoin; n > 0 {
		l.recent = append(l.recent[:0:0], l.recent[n:]...)
	}
	msg := ChatFromRecord(rec)
	a.broadcast("", SignalChat{Message: msg})
	return msg, nil
}

// SendChat sends a chat message from the server, under name, to the room's
// running session: kept with it and sent to every member.
func (r *Rooms) SendChat(ctx context.Context, roomID RoomID, name, text string) (ChatMessage, error) {
	if err := ValidateRoomID(roomID); err != nil {
		return ChatMessage{}, ErrRoomNotFound
	}
	if err := validChatText(text); err != nil {
		return ChatMessage{}, err
	}
	if err := validateName("name", name, false); err != nil {
		return ChatMessage{}, err
	}
	if len(name) > maxChatName {
		return ChatMessage{}, invalid("name", "must be at most %d bytes", maxChatName)
	}
	reply, err := requestAs[*sendChatReply](ctx, r, roomID, &sendChat{name: name, text: text})
	if err != nil {
		return ChatMessage{}, err
	}
	return reply.msg, reply.err
}

// SessionChat returns a page of a session's chat, oldest first, and the
// session's number of messages.
func (r *Rooms) SessionChat(ctx context.Context, id SessionID, limit, offset int) ([]ChatMessage, int, error) {
	if _, err := r.Session(ctx, id); err != nil {
		return nil, 0, err
	}
	page, err := r.cfg.Store.ListChat(ctx, persistence.ChatQuery{SessionID: string(id), Limit: limit, Offset: offset})
	if err != nil {
		return nil, 0, fmt.Errorf("session chat: %w", err)
	}
	out := make([]ChatMessage, len(page.Messages))
	for i, m := range page.Messages {
		out[i] = ChatFromRecord(m)
	}
	return out, page.Total, nil
}
