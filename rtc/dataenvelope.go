package rtc

// This file owns the framing of data messages on the participants' data
// channels (docs/signaling.md, Data messages): parsing what a client sends
// and encoding what the relay sends on, tagged with its sender.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// Data channel labels: a client opens either or both. The reliable one is
// ordered with retransmissions; the lossy one unordered without.
const (
	DataLabelReliable = "troupe-reliable"
	DataLabelLossy    = "troupe-lossy"
)

// Limits of a data message, envelope included.
const (
	// MaxReliableMessage bounds a frame on the reliable channel, both
	// ways: a client's frame, and the relayed one with the sender's tags.
	MaxReliableMessage = 64 << 10
	// MaxLossyMessage bounds a frame on the lossy channel, both ways: what
	// one SCTP DATA chunk carries with pion's initial MTU (1191 bytes less
	// the 12-byte common header and the 16-byte chunk header), so that a
	// lost packet loses one message and never a fragment of one.
	MaxLossyMessage = 1163
	// MaxDataTopic bounds a topic, in bytes.
	MaxDataTopic = 64
	// MaxDataTargets bounds the participants a message names.
	MaxDataTargets = 64
	// maxDataHeader bounds a binary frame's JSON header.
	maxDataHeader = 4096
	// dataFrameVersion is the first byte of a binary frame.
	dataFrameVersion = 1
	// maxTargetID bounds a named participant id; ours are far shorter.
	maxTargetID = 128
)

// DataMessage is one message between participants: its topic, the
// participants it is for (none: the whole room), and its payload, text or
// binary as it was sent.
type DataMessage struct {
	Topic   string
	To      []string
	Payload []byte
	Text    bool
	Lossy   bool
}

// DataSender tags a relayed message: the sending participant's id and
// identity, both empty for a message from the server.
type DataSender struct {
	ID, Identity string
}

// dataHeader is a client's envelope: the JSON of a text frame (with data)
// or the header of a binary frame (without).
type dataHeader struct {
	Topic *string   `json:"topic"`
	To    *[]string `json:"to"`
	Data  *string   `json:"data"`
}

// relayedHeader is the envelope of a relayed message.
type relayedHeader struct {
	Topic    string   `json:"topic"`
	From     string   `json:"from,omitempty"`
	Identity string   `json:"identity,omitempty"`
	To       []string `json:"to,omitempty"`
	Data     *string  `json:"data,omitempty"`
}

// ParseDataMessage reads a client's frame: a text frame is a JSON object
// {"topic", "to"?, "data"}; a binary frame is a version byte (1), a
// big-endian uint16 header length, that many bytes of JSON header
// {"topic", "to"?}, and the payload. Its errors wrap ErrBadDataMessage.
func ParseDataMessage(frame []byte, text bool) (DataMessage, error) {
	var msg DataMessage
	msg.Text = text
	head := frame
	if !text {
		if len(frame) < 3 || frame[0] != dataFrameVersion {
			return msg, badData("a binary frame starts with the version byte 1 and a 2-byte header length")
		}
		n := int(binary.BigEndian.Uint16(frame[1:3]))
		if n > maxDataHeader || 3+n > len(frame) {
			return msg, badData("the binary frame's header length is %d; at most %d and within the frame", n, maxDataHeader)
		}
		head, msg.Payload = frame[3:3+n], frame[3+n:]
	}
	var h dataHeader
	if err := strictJSON(head, &h); err != nil {
		return msg, err
	}
	switch {
	case h.Topic == nil:
		return msg, badField("topic", "is required")
	case text && h.Data == nil:
		return msg, badData("data is required in a text message")
	case !text && h.Data != nil:
		return msg, badData("a binary frame carries its data after the header, not in it")
	}
	if err := validTopic(*h.Topic); err != nil {
		return msg, err
	}
	msg.Topic = *h.Topic
	if h.To != nil {
		if len(*h.To) == 0 || len(*h.To) > MaxDataTargets {
			return msg, badField("to", "names 1 to %d participants, or is left out for the whole room", MaxDataTargets)
		}
		for _, id := range *h.To {
			if id == "" || len(id) > maxTargetID {
				return msg, badField("to", "has an empty or overlong participant id")
			}
		}
		msg.To = *h.To
	}
	if text {
		msg.Payload = []byte(*h.Data)
	}
	return msg, nil
}

func validTopic(t string) error {
	if t == "" || len(t) > MaxDataTopic || !utf8.ValidString(t) {
		return badField("topic", "must be 1 to %d bytes of UTF-8", MaxDataTopic)
	}
	for _, r := range t {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return badField("topic", "must not contain spaces or control characters")
		}
	}
	return nil
}

// strictJSON decodes one JSON object into v, refusing unknown fields and
// anything after it.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badData("the envelope is not a JSON object of topic, to and data: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badData("the envelope has data after its JSON object")
	}
	return nil
}

// encodeRelayed builds the frame a receiver gets: msg's envelope with the
// sender's tags, in msg's framing (text or binary).
func encodeRelayed(from DataSender, msg DataMessage) ([]byte, error) {
	h := relayedHeader{Topic: msg.Topic, From: from.ID, Identity: from.Identity, To: msg.To}
	if msg.Text {
		s := string(msg.Payload)
		h.Data = &s
		return json.Marshal(h)
	}
	head, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	if len(head) > 0xFFFF {
		return nil, fmt.Errorf("%w: the envelope is too long", ErrDataTooLarge)
	}
	out := make([]byte, 3, 3+len(head)+len(msg.Payload))
	out[0] = dataFrameVersion
	binary.BigEndian.PutUint16(out[1:3], uint16(len(head)))
	out = append(out, head...)
	return append(out, msg.Payload...), nil
}

// dataLimit is the largest frame on a channel of that kind.
func dataLimit(lossy bool) int {
	if lossy {
		return MaxLossyMessage
	}
	return MaxReliableMessage
}

func badData(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadDataMessage, fmt.Sprintf(format, args...))
}

// DataFieldError is a refusal of one field of a data message's envelope
// (its topic, its to), which the API names. It is an ErrBadDataMessage.
type DataFieldError struct {
	Field, Reason string
}

func (e *DataFieldError) Error() string {
	return ErrBadDataMessage.Error() + ": " + e.Field + " " + e.Reason
}

func (e *DataFieldError) Unwrap() error { return ErrBadDataMessage }

func badField(field, format string, args ...any) error {
	return &DataFieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidateDataMessage checks a message the server sends (it did not come
// through ParseDataMessage): its topic, its targets and, once tagged, its
// size. Its errors wrap ErrBadDataMessage or ErrDataTooLarge.
func ValidateDataMessage(msg DataMessage) error {
	if err := validTopic(msg.Topic); err != nil {
		return err
	}
	if len(msg.To) > MaxDataTargets {
		return badField("to", "names at most %d participants", MaxDataTargets)
	}
	for _, id := range msg.To {
		if id == "" || len(id) > maxTargetID {
			return badField("to", "has an empty or overlong participant id")
		}
	}
	frame, err := encodeRelayed(DataSender{}, msg)
	if err != nil {
		return err
	}
	if len(frame) > dataLimit(msg.Lossy) {
		return fmt.Errorf("%w: %d bytes framed, over %d", ErrDataTooLarge, len(frame), dataLimit(msg.Lossy))
	}
	return nil
}
