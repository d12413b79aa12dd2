package persistence

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned when no record exists under the requested key,
	// and for idempotency records older than Config.IdempotencyTTL.
	ErrNotFound = errors.New("persistence: not found")
	// ErrClosed is returned by every operation after Close.
	ErrClosed = errors.New("persistence: closed")
	// ErrInvalid is wrapped by errors about arguments that cannot be stored,
	// such as a room without an id.
	ErrInvalid = errors.New("persistence: invalid argument")
	// ErrCorrupt matches every *CorruptError.
	ErrCorrupt = errors.New("persistence: corrupt value")
	// ErrUnknownSchema is wrapped by a *CorruptError when a value starts with
	// a schema version this build does not know, typically written by a newer
	// Troupe.
	ErrUnknownSchema = errors.New("persistence: unknown schema version")
)

// KeyKind names the kind of record a key holds, for error messages.
type KeyKind string

// The kinds of records in the database.
const (
	KindRoom         KeyKind = "room"
	KindRoomIndex    KeyKind = "room index"
	KindIdempotency  KeyKind = "idempotency"
	KindMeta         KeyKind = "meta"
	KindSession      KeyKind = "session"
	KindSessionIdx   KeyKind = "session index"
	KindMember       KeyKind = "member"
	KindOutbox       KeyKind = "webhook outbox"
	KindFailed       KeyKind = "failed webhook"
	KindRecording    KeyKind = "recording"
	KindRecordingIdx KeyKind = "recording index"
)

// CorruptError reports a stored value that could not be decoded: damaged
// bytes, an index entry without its record, or a schema version newer than
// this build. errors.Is(err, ErrCorrupt) holds for every CorruptError, and
// errors.Is(err, ErrUnknownSchema) for the schema case.
type CorruptError struct {
	Kind KeyKind
	Key  string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("persistence: corrupt %s value at key %q: %v", e.Kind, e.Key, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

func corrupt(kind KeyKind, key []byte, err error) error {
	return &CorruptError{Kind: kind, Key: string(key), Err: err}
}
