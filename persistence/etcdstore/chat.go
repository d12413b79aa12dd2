package etcdstore

// This file owns the chat records in etcd: each session's chat messages
// under <prefix>chat/<session id>/<seq as 16 hex digits>, written by Apply
// (Writes.Chat) under the fence of their room.

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

const prefixChat = "chat/"

func (k keys) chats(session string) string { return k.p + prefixChat + esc(session) + "/" }

func (k keys) chat(session string, seq uint64) string {
	return k.chats(session) + fmt.Sprintf("%016x", seq)
}

// plannedChat is a chat message's key and value, and its room for the fence.
type plannedChat struct {
	keyVal
	room string
}

func (s *Store) planChat(p *plan, w *persistence.Writes) error {
	for _, m := range w.Chat {
		if err := persistence.ValidateChat(m); err != nil {
			return err
		}
		v, err := persistence.EncodeChat(m)
		if err != nil {
			return err
		}
		p.chat = append(p.chat, plannedChat{keyVal{s.k.chat(m.SessionId, m.Seq), string(v)}, m.RoomId})
	}
	return nil
}

// ListChat returns a page of a session's chat messages, oldest first, and
// their number, from one revision of the store.
func (s *Store) ListChat(ctx context.Context, q persistence.ChatQuery) (persistence.ChatPage, error) {
	var page persistence.ChatPage
	if err := s.enter(ctx); err != nil {
		return page, err
	}
	defer s.leave()
	prefix := s.k.chats(q.SessionID)
	count, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return page, fmt.Errorf("etcdstore: list chat of session %q: %w", q.SessionID, err)
	}
	page.Total = int(count.Count)
	offset := max(q.Offset, 0)
	if offset >= page.Total {
		return page, nil
	}
	// etcd has no offset: read up to the page's end, at the count's
	// revision, and keep the page.
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithRev(count.Header.Revision)}
	if q.Limit > 0 {
		opts = append(opts, clientv3.WithLimit(int64(offset+q.Limit)))
	}
	resp, err := s.cli.Get(ctx, prefix, opts...)
	if err != nil {
		return page, fmt.Errorf("etcdstore: list chat of session %q: %w", q.SessionID, err)
	}
	for _, kv := range resp.Kvs[min(offset, len(resp.Kvs)):] {
		m, err := persistence.DecodeChat(kv.Value)
		if err == nil && m.SessionId != q.SessionID {
			err = fmt.Errorf("holds a message of session %q", m.SessionId)
		}
		if err != nil {
			return persistence.ChatPage{}, &persistence.CorruptError{Kind: persistence.KindChat, Key: string(kv.Key), Err: err}
		}
		page.Messages = append(page.Messages, m)
	}
	return page, nil
}
