package persistence

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// The functions below let a store of record in a sub-package (the cluster's
// etcd backend) hold the same records to the same rules and store them in the
// same encodings as Store, without a copy of either: a value written by one
// backend reads back in the other, and a rule changed here changes for both.
// The decoders return the bare cause of a failure; the caller, who knows the
// key, wraps it in a *CorruptError.

// Validate checks w as Apply does before writing anything: it returns an
// error matching ErrInvalid for the first record that cannot be stored.
func (w *Writes) Validate() error {
	_, err := w.prepare()
	return err
}

// EncodeRoom returns the stored form of a room.
func EncodeRoom(r *recordpb.Room) ([]byte, error) { return encodeRoom(r) }

// DecodeRoom parses what EncodeRoom returned.
func DecodeRoom(v []byte) (*recordpb.Room, error) { return decodeRoom(v) }

// EncodeSession returns the stored form of a session.
func EncodeSession(s *recordpb.Session) ([]byte, error) { return encodeSession(s) }

// DecodeSession parses what EncodeSession returned.
func DecodeSession(v []byte) (*recordpb.Session, error) { return decodeSession(v) }

// EncodeMember returns the stored form of a session member.
func EncodeMember(m *recordpb.SessionMember) ([]byte, error) { return encodeMember(m) }

// DecodeMember parses what EncodeMember returned.
func DecodeMember(v []byte) (*recordpb.SessionMember, error) { return decodeMember(v) }

// EncodeWebhookEvent returns the stored form of a pending webhook delivery.
func EncodeWebhookEvent(e *recordpb.WebhookEvent) ([]byte, error) { return encodeWebhookEvent(e) }

// DecodeWebhookEvent parses what EncodeWebhookEvent or FailedRecord returned.
func DecodeWebhookEvent(v []byte) (*recordpb.WebhookEvent, error) { return decodeWebhookEvent(v) }

// EncodeRecording returns the stored form of a recording.
func EncodeRecording(r *recordpb.Recording) ([]byte, error) { return encodeRecording(r) }

// DecodeRecording parses what EncodeRecording returned.
func DecodeRecording(v []byte) (*recordpb.Recording, error) { return decodeRecording(v) }

// FailedRecord checks that e can be kept as a failed delivery (it needs a
// failed_at that Unix nanoseconds can hold, ErrInvalid otherwise) and
// returns its failed_at in Unix nanoseconds and the stored form of the
// record: e without its secret.
func FailedRecord(e *recordpb.WebhookEvent) (failedAt int64, val []byte, err error) {
	failedAt, err = timeNanos(e.GetFailedAt(), "webhook event", e.GetId(), "failed_at")
	if err != nil {
		return 0, nil, err
	}
	rec := proto.Clone(e).(*recordpb.WebhookEvent)
	rec.Secret = ""
	val, err = encodeWebhookEvent(rec)
	if err != nil {
		return 0, nil, err
	}
	return failedAt, val, nil
}

// EncodeIdempotent checks an idempotency record as PutIdempotent does (a
// non-empty key, a status not below zero, a CreatedAt within what Unix
// nanoseconds hold; ErrInvalid otherwise), sets a zero CreatedAt to now, and
// returns the record as it will be stored and its stored form.
func EncodeIdempotent(key string, r IdempotentResponse, now time.Time) (IdempotentResponse, []byte, error) {
	r, err := checkIdempotent(key, r, now)
	if err != nil {
		return IdempotentResponse{}, nil, err
	}
	return r, encodeIdempotent(r), nil
}

// DecodeIdempotent parses what EncodeIdempotent returned.
func DecodeIdempotent(v []byte) (*IdempotentResponse, error) { return decodeIdempotent(v) }

// InProgressSessions is Backend.InProgressSessions for a backend that lists
// through list, its own ListSessions: every backend finds the sessions left
// open by the same query.
func InProgressSessions(ctx context.Context, list func(context.Context, SessionQuery) (SessionPage, error)) ([]*recordpb.Session, error) {
	page, err := list(ctx, SessionQuery{Status: recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS})
	if err != nil {
		return nil, err
	}
	return page.Sessions, nil
}
