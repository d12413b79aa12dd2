package actors

// This file owns the room's data messages: its relay (rtc.DataRelay),
// each signaling member's endpoint on it, the messages the server sends
// (POST /rooms/{id}/data), and the refusals a sender is told of. The
// messages themselves never pass through this actor's mailbox: the relay
// moves them between the members' peers (see rtc/datachannel.go). Chat,
// the one topic the room handles itself, is in room_chat.go.

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-media/troupe/rtc"
)

// Data message errors: the relay's, and the room's own.
var (
	// ErrBadDataMessage is a data message whose envelope does not parse;
	// the error says why.
	ErrBadDataMessage = rtc.ErrBadDataMessage
	// ErrDataTooLarge is a data message over its channel's limit.
	ErrDataTooLarge = rtc.ErrDataTooLarge
	// ErrUnknownTarget is a data message for a participant not in the room.
	ErrUnknownTarget = rtc.ErrUnknownTarget
	// ErrDataNotAllowed is a data or chat message from a participant
	// without the publish_data grant.
	ErrDataNotAllowed = rtc.ErrDataNotAllowed
	// ErrChatDisabled is a chat message in a room whose chat_enabled is
	// false.
	ErrChatDisabled = errors.New("actors: chat is disabled in this room")
)

// DataFieldError is an ErrBadDataMessage that names the envelope's field
// at fault (topic, to).
type DataFieldError = rtc.DataFieldError

// DataMessage is a data message the server sends to a room.
type DataMessage struct {
	Topic string
	// To names participant ids; none: everyone.
	To []ParticipantID
	// Payload is sent as text when Text is set (it must be UTF-8), else
	// as binary.
	Payload []byte
	Text    bool
	// Lossy sends it on the receivers' lossy channels, where they have
	// one.
	Lossy bool
}

// Messages about data: from the REST API, and from the relay.
type (
	sendData struct {
		msg rtc.DataMessage
	}
	sendDataReply struct {
		receivers int
		err       error
	}
	// dataRefused tells the room to tell a member why its message was
	// refused.
	dataRefused struct {
		id  ParticipantID
		err error
	}
)

// SignalError is an error a participant is told of outside any request
// of its own: a data or chat message of its refused. Request names what
// failed ("data", "chat").
type SignalError struct {
	Request string
	Err     error
}

func (SignalError) isSignal() {}

// relay returns the room's data relay, made on first use. It lives with
// the members (roomLife), so that a restart of the room keeps it.
func (a *roomActor) relay() *rtc.DataRelay {
	if a.life.data == nil {
		self, root := a.self, a.deps.system.Root
		a.life.data = rtc.NewDataRelay(rtc.DataRelayConfig{
			Metrics: a.deps.metrics.data,
			Clock:   a.deps.cfg.Clock,
			Logger:  a.log,
			// Chat goes through the room: it is checked against the
			// config, kept with the session, and then sent on. Chat is
			// at human rates, and limited as any data message before this.
			Intercept: func(from rtc.DataSender, msg rtc.DataMessage) bool {
				if msg.Topic != ChatTopic {
					return false
				}
				root.Send(self, &chatReceived{from: from, msg: msg})
				return true
			},
		})
	}
	return a.life.data
}

// openData gives a signaling member its endpoint on the relay, and has its
// peer take the client's data channels. WHIP and WHEP clients have none.
func (a *roomActor) openData(m *member, peer *rtc.Peer) {
	if m.kind != ClientSignaling || peer == nil {
		return
	}
	self, root, id := a.self, a.deps.system.Root, m.info.ID
	m.data = a.relay().Join(rtc.DataSender{ID: string(id), Identity: m.info.Identity}, func(err error) {
		root.Send(self, &dataRefused{id: id, err: err})
	})
	m.data.SetMaySend(m.info.Grants.PublishData)
	peer.AcceptData(m.data)
}

// closeData takes a member that left off the relay.
func (a *roomActor) closeData(m *member) {
	if m.data != nil {
		m.data.Close()
	}
}

func (a *roomActor) tellRefused(id ParticipantID, request string, err error) {
	if m, ok := a.members[id]; ok && m.signal != nil && m.leaveReason == "" {
		m.signal.Signal(SignalError{Request: request, Err: err})
	}
}

// receiveInside handles the messages about what goes on inside the room:
// data, chat and hands. It reports whether msg was one.
func (a *roomActor) receiveInside(ctx actor.Context, msg any) bool {
	switch m := msg.(type) {
	case *sendData:
		if _, err := a.current(); err != nil {
			a.respond(ctx, &sendDataReply{err: err})
			break
		}
		n, err := a.relay().Send(rtc.DataSender{}, m.msg)
		a.respond(ctx, &sendDataReply{receivers: n, err: err})
	case *dataRefused:
		a.tellRefused(m.id, "data", m.err)
	case *chatReceived:
		a.chatReceived(ctx, m)
	case *sendChat:
		a.respond(ctx, a.sendChat(m))
	case *raiseHand:
		a.raiseHand(ctx, m)
	case *handsFlush:
		a.handsFlush(m)
	default:
		return false
	}
	return true
}

// SendData sends msg from the server to the room's participants that
// have a data channel open, or to those it names (every one of which must
// be in the room). It returns how many it was queued for.
func (r *Rooms) SendData(ctx context.Context, roomID RoomID, msg DataMessage) (int, error) {
	if err := ValidateRoomID(roomID); err != nil {
		return 0, ErrRoomNotFound
	}
	if msg.Text && !utf8.Valid(msg.Payload) {
		return 0, invalid("data", "must be valid UTF-8 text")
	}
	out := rtc.DataMessage{Topic: msg.Topic, Payload: msg.Payload, Text: msg.Text, Lossy: msg.Lossy}
	for _, id := range msg.To {
		out.To = append(out.To, string(id))
	}
	if err := rtc.ValidateDataMessage(out); err != nil {
		return 0, err
	}
	reply, err := requestAs[*sendDataReply](ctx, r, roomID, &sendData{msg: out})
	if err != nil {
		return 0, err
	}
	if reply.err != nil {
		return 0, fmt.Errorf("send data to room %s: %w", roomID, reply.err)
	}
	return reply.receivers, nil
}
