package persistence

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/recordpb"
)

// Every value starts with a schema byte naming its encoding, so that a later
// Troupe can change an encoding and still read what older versions wrote, and
// an older Troupe refuses (with ErrUnknownSchema) what it cannot read rather
// than misreading it. testdata/*.golden pins the current encodings.
const (
	roomSchemaV1         = 1 // protobuf recordpb.Room
	idempotencySchemaV1  = 1 // see encodeIdempotent: v2 without its headers
	idempotencySchemaV2  = 2 // see encodeIdempotent
	sessionSchemaV1      = 1 // protobuf recordpb.Session
	memberSchemaV1       = 1 // protobuf recordpb.SessionMember
	webhookEventSchemaV1 = 1 // protobuf recordpb.WebhookEvent
	recordingSchemaV1    = 1 // protobuf recordpb.Recording
)

var errEmptyValue = errors.New("empty value")

func checkSchema(v []byte, known byte) error {
	if len(v) == 0 {
		return errEmptyValue
	}
	if v[0] != known {
		return fmt.Errorf("%w %d (this build reads %d)", ErrUnknownSchema, v[0], known)
	}
	return nil
}

// encodeProto returns the stored form of a protobuf record: the schema byte,
// then the message. Deterministic marshaling keeps equal records byte-equal,
// which the golden tests rely on.
func encodeProto(schema byte, kind KeyKind, id string, m proto.Message) ([]byte, error) {
	v, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend([]byte{schema}, m)
	if err != nil {
		return nil, fmt.Errorf("persistence: encode %s %q: %w", kind, id, err)
	}
	return v, nil
}

// decodeProto parses a stored protobuf record of type T. Its errors are
// wrapped into a *CorruptError by the caller, which knows the key.
func decodeProto[T any, M interface {
	*T
	proto.Message
}](v []byte, schema byte) (M, error) {
	if err := checkSchema(v, schema); err != nil {
		return nil, err
	}
	m := M(new(T))
	if err := proto.Unmarshal(v[1:], m); err != nil {
		return nil, err
	}
	return m, nil
}

func encodeRoom(r *recordpb.Room) ([]byte, error) {
	return encodeProto(roomSchemaV1, KindRoom, r.GetId(), r)
}

func decodeRoom(v []byte) (*recordpb.Room, error) {
	return decodeProto[recordpb.Room](v, roomSchemaV1)
}

func encodeSession(r *recordpb.Session) ([]byte, error) {
	return encodeProto(sessionSchemaV1, KindSession, r.GetId(), r)
}

func decodeSession(v []byte) (*recordpb.Session, error) {
	return decodeProto[recordpb.Session](v, sessionSchemaV1)
}

func encodeMember(m *recordpb.SessionMember) ([]byte, error) {
	return encodeProto(memberSchemaV1, KindMember, m.GetParticipantId(), m)
}

func decodeMember(v []byte) (*recordpb.SessionMember, error) {
	return decodeProto[recordpb.SessionMember](v, memberSchemaV1)
}

func encodeWebhookEvent(e *recordpb.WebhookEvent) ([]byte, error) {
	return encodeProto(webhookEventSchemaV1, KindOutbox, e.GetId(), e)
}

func decodeWebhookEvent(v []byte) (*recordpb.WebhookEvent, error) {
	return decodeProto[recordpb.WebhookEvent](v, webhookEventSchemaV1)
}

func encodeRecording(r *recordpb.Recording) ([]byte, error) {
	return encodeProto(recordingSchemaV1, KindRecording, r.GetId(), r)
}

func decodeRecording(v []byte) (*recordpb.Recording, error) {
	return decodeProto[recordpb.Recording](v, recordingSchemaV1)
}

// encodeIdempotent returns the stored form of an idempotency record:
//
//	byte     schema version (2)
//	8 bytes  created at, Unix nanoseconds, big-endian two's complement
//	uvarint  HTTP status
//	uvarint  length of the fingerprint, then its bytes
//	uvarint  length of the content type, then its bytes
//	uvarint  length of the body, then its bytes
//	uvarint  number of headers, then for each
//	         uvarint length of its name, then its bytes
//	         uvarint length of its value, then its bytes
//
// The creation time comes first so that pruning reads it without parsing
// the rest. Schema 1, written before responses kept headers, ends after
// the body; it is still read, as a record without headers.
func encodeIdempotent(r IdempotentResponse) []byte {
	n := 1 + 8 + 5*binary.MaxVarintLen64 + len(r.Fingerprint) + len(r.ContentType) + len(r.Body)
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen64 + len(h.Name) + len(h.Value)
	}
	v := make([]byte, 0, n)
	v = append(v, idempotencySchemaV2)
	v = binary.BigEndian.AppendUint64(v, uint64(r.CreatedAt.UnixNano()))
	v = binary.AppendUvarint(v, uint64(r.Status))
	v = appendBytes(v, r.Fingerprint)
	v = appendBytes(v, r.ContentType)
	v = appendBytes(v, string(r.Body))
	v = binary.AppendUvarint(v, uint64(len(r.Headers)))
	for _, h := range r.Headers {
		v = appendBytes(v, h.Name)
		v = appendBytes(v, h.Value)
	}
	return v
}

// appendBytes appends s with its length before it.
func appendBytes(v []byte, s string) []byte {
	v = binary.AppendUvarint(v, uint64(len(s)))
	return append(v, s...)
}

var errTruncated = errors.New("truncated value")

// idempotentCreatedAt reads only the creation time of a stored record.
func idempotentCreatedAt(v []byte) (time.Time, error) {
	// Schema 1 is schema 2 up to the end of the body.
	if len(v) == 0 || v[0] != idempotencySchemaV1 {
		if err := checkSchema(v, idempotencySchemaV2); err != nil {
			return time.Time{}, err
		}
	}
	if len(v) < 1+8 {
		return time.Time{}, errTruncated
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC(), nil
}

func decodeIdempotent(v []byte) (*IdempotentResponse, error) {
	created, err := idempotentCreatedAt(v)
	if err != nil {
		return nil, err
	}
	d := decoder{b: v[9:]}
	status := d.uvarint()
	fingerprint := d.bytes()
	contentType := d.bytes()
	body := d.bytes()
	var headers []Header
	if v[0] == idempotencySchemaV2 {
		n := d.uvarint()
		// Each header takes two bytes at least: a count beyond that is
		// corrupt, and must not size an allocation.
		if d.err == nil && n > uint64(len(d.b)/2) {
			return nil, fmt.Errorf("%d headers in %d bytes", n, len(d.b))
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			name, value := d.bytes(), d.bytes()
			headers = append(headers, Header{Name: string(name), Value: string(value)})
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if status > math.MaxInt32 {
		return nil, fmt.Errorf("status %d out of range", status)
	}
	return &IdempotentResponse{
		Fingerprint: string(fingerprint),
		Status:      int(status),
		ContentType: string(contentType),
		Body:        append([]byte(nil), body...), // v belongs to Pebble
		Headers:     headers,
		CreatedAt:   created,
	}, nil
}

// decoder reads uvarints and length-prefixed byte strings, remembering the
// first error so that a decode reads as a straight sequence of fields.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return x
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}
