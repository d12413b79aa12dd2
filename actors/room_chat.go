package actors

// This file owns the room's chat: data messages on the topic "chat" (and
// POST /rooms/{id}/chat) are checked against chat_enabled, numbered and
// kept with the session, then sent to every member over signaling, in
// order; a joiner gets the session's last ChatHistoryOnJoin messages in
// its joined message. Each member's chat has a rate, and each session a
// cap on the messages kept (ChatConfig): chat is written synced, so a
// member must not turn it into the node's disk load.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"
	"golang.org/x/time/rate"

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

// Defaults of a ChatConfig.
const (
	DefaultChatRate          = 2 // messages a second per member
	DefaultChatBurst         = 10
	DefaultChatMaxPerSession = 10000
)

var (
	// ErrChatRateLimited is a member's chat message beyond its rate.
	ErrChatRateLimited = errors.New("actors: too many chat messages; slow down")
	// ErrChatFull is a chat message to a session that has kept its
	// ChatConfig.MaxPerSession messages.
	ErrChatFull = errors.New("actors: the session's chat is full")
)

// ChatConfig bounds the chat. The zero value of each field means its
// default.
type ChatConfig struct {
	// Rate is the sustained chat messages a second one member may send,
	// with bursts of Burst; a message beyond it is refused
	// (ErrChatRateLimited). Defaults DefaultChatRate, DefaultChatBurst.
	// Messages the server sends (POST /rooms/{id}/chat) are not limited.
	Rate  float64
	Burst int
	// MaxPerSession is how many messages a session keeps; one more is
	// refused (ErrChatFull), from a member or the server. Default
	// DefaultChatMaxPerSession.
	MaxPerSession int
}

func (c *ChatConfig) ensureDefaults() error {
	if c.Rate < 0 || c.Burst < 0 || c.MaxPerSession < 0 {
		return errors.New("actors: Config.Chat's fields must not be negative")
	}
	if c.Rate == 0 {
		c.Rate = DefaultChatRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultChatBurst
	}
	if c.MaxPerSession == 0 {
		c.MaxPerSession = DefaultChatMaxPerSession
	}
	return nil
}

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
	// limits are the members' chat rates in this session.
	limits map[ParticipantID]*rate.Limiter
}

// allowChat takes one of member id's chat tokens, if it has one.
func (a *roomActor) allowChat(l *chatLog, id ParticipantID) bool {
	if l.limits == nil {
		l.limits = make(map[ParticipantID]*rate.Limiter)
	}
	lim, ok := l.limits[id]
	if !ok {
		if len(l.limits) >= 2*len(a.members)+16 {
			// Forget those who left: a member that joins again starts
			// with a full bucket, as any joiner does.
			for pid := range l.limits {
				if _, ok := a.members[pid]; !ok {
					delete(l.limits, pid)
				}
			}
		}
		cfg := a.deps.cfg.Chat
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst)
		l.limits[id] = lim
	}
	return lim.AllowN(a.now(), 1)
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
		if err := validChatText(string(m.msg.Payload)); err != nil {
			return err
		}
		l, err := a.chatLog()
		if err != nil {
			return err
		}
		if !a.allowChat(l, id) {
			return ErrChatRateLimited
		}
		_, err = a.postChat(mb.info.ID, mb.info.Identity, mb.info.Name, string(m.msg.Payload))
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
	if l.seq >= uint64(a.deps.cfg.Chat.MaxPerSession) {
		return ChatMessage{}, fmt.Errorf("%w: it keeps at most %d messages", ErrChatFull, a.deps.cfg.Chat.MaxPerSession)
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
