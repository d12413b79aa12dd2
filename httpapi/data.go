package httpapi

import (
	"encoding/base64"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// Signaling and REST error codes of data messages.
const (
	codeInvalidDataMessage = "invalid_data_message"
	codeDataTooLarge       = "data_too_large"
	codeUnknownTarget      = "unknown_participant"
	codeChatDisabled       = "chat_disabled"
)

// dataSentJSON answers POST /rooms/{id}/data: how many participants the
// message was queued for.
type dataSentJSON struct {
	Receivers int `json:"receivers"`
}

// sendData is POST /rooms/{id}/data: a data message from the server, to
// the room or to the participants it names. The body has topic, and data
// (text) or data_base64 (binary), and optionally to and lossy.
func (s *Server) sendData(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	var msg actors.DataMessage
	topic, err := requiredString(o, "topic")
	if err != nil {
		return err
	}
	msg.Topic = topic
	text, err := nonNull[string](o, "data", whatString)
	if err != nil {
		return err
	}
	b64, err := nonNull[string](o, "data_base64", whatString)
	if err != nil {
		return err
	}
	switch {
	case (text == nil) == (b64 == nil):
		return fieldError("data", "give either data (text) or data_base64 (binary)")
	case text != nil:
		msg.Payload, msg.Text = []byte(*text), true
	default:
		if msg.Payload, err = base64.StdEncoding.DecodeString(*b64); err != nil {
			return fieldError("data_base64", "must be standard base64")
		}
	}
	to, err := nonNull[[]string](o, "to", whatStrings)
	if err != nil {
		return err
	}
	if to != nil {
		if len(*to) == 0 {
			return fieldError("to", "must name at least one participant, or be left out for the whole room")
		}
		for _, id := range *to {
			msg.To = append(msg.To, actors.ParticipantID(id))
		}
	}
	lossy, err := nonNull[bool](o, "lossy", whatBool)
	if err != nil {
		return err
	}
	msg.Lossy = lossy != nil && *lossy
	if err := o.finish(); err != nil {
		return err
	}
	n, err := s.cfg.Rooms.SendData(c.Request.Context(), actors.RoomID(c.Param("id")), msg)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, dataSentJSON{Receivers: n})
	return nil
}
