package persistence

// This file owns the chat records: each session's chat messages, kept in
// the order they were sent, under "chat/<session id>/<seq>" (seq as 8
// big-endian bytes, from 1).

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

const (
	prefixChat   = "chat/"
	chatSchemaV1 = 1 // protobuf recordpb.ChatMessage
	// KindChat names chat records in errors.
	KindChat KeyKind = "chat message"
)

// ChatQuery selects a page of a session's chat, oldest first. Limit and
// Offset work as in the other listings.
type ChatQuery struct {
	SessionID     string
	Limit, Offset int
}

// ChatPage is a page of chat messages and the session's count of them.
type ChatPage struct {
	Messages []*recordpb.ChatMessage
	Total    int
}

func chatPrefix(session string) []byte {
	return append(appendEscaped([]byte(prefixChat), session), '/')
}

func chatKey(session string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(chatPrefix(session), seq)
}

// ChatKeySuffix is the part of a chat message's key after its session's
// prefix: its seq, in an order that byte comparison keeps.
func ChatKeySuffix(seq uint64) string {
	return string(binary.BigEndian.AppendUint64(nil, seq))
}

func encodeChat(m *recordpb.ChatMessage) ([]byte, error) {
	return encodeProto(chatSchemaV1, KindChat, fmt.Sprint(m.GetSeq()), m)
}

func decodeChat(v []byte) (*recordpb.ChatMessage, error) {
	return decodeProto[recordpb.ChatMessage](v, chatSchemaV1)
}

// EncodeChat returns the stored form of a chat message.
func EncodeChat(m *recordpb.ChatMessage) ([]byte, error) { return encodeChat(m) }

// DecodeChat parses what EncodeChat returned.
func DecodeChat(v []byte) (*recordpb.ChatMessage, error) { return decodeChat(v) }

// ValidateChat checks what a chat record needs: a session id, a room id,
// a seq from 1 and a sent_at.
func ValidateChat(m *recordpb.ChatMessage) error {
	switch {
	case m.GetSessionId() == "":
		return fmt.Errorf("%w: chat message without session id", ErrInvalid)
	case m.RoomId == "":
		return fmt.Errorf("%w: chat message %d of session %q without room id", ErrInvalid, m.Seq, m.SessionId)
	case m.Seq == 0:
		return fmt.Errorf("%w: chat message of session %q without seq", ErrInvalid, m.SessionId)
	}
	_, err := timeNanos(m.SentAt, "chat message", fmt.Sprint(m.Seq), "sent_at")
	return err
}

func prepareChat(m *recordpb.ChatMessage) (keyValue, error) {
	if err := ValidateChat(m); err != nil {
		return keyValue{}, err
	}
	val, err := encodeChat(m)
	if err != nil {
		return keyValue{}, err
	}
	return keyValue{chatKey(m.SessionId, m.Seq), val}, nil
}

// ListChat returns a page of a session's chat messages in the order they
// were sent (seq ascending), and their number. A session without chat, or
// no such session, has none and no error.
func (s *Store) ListChat(ctx context.Context, q ChatQuery) (ChatPage, error) {
	var page ChatPage
	if err := s.enter(ctx); err != nil {
		return page, err
	}
	defer s.leave()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	offset := max(q.Offset, 0)
	err := scanPage(ctx, snap, chatPrefix(q.SessionID), 0, 0, func(key, val []byte) error {
		page.Total++
		if page.Total <= offset || (q.Limit > 0 && len(page.Messages) >= q.Limit) {
			return nil
		}
		m, err := decodeChat(val)
		if err != nil {
			return corrupt(KindChat, key, err)
		}
		if m.SessionId != q.SessionID {
			return corrupt(KindChat, key, fmt.Errorf("holds a message of session %q", m.SessionId))
		}
		page.Messages = append(page.Messages, m)
		return nil
	})
	if err != nil {
		return ChatPage{}, fmt.Errorf("persistence: list chat of session %q: %w", q.SessionID, err)
	}
	return page, nil
}
