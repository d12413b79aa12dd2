package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// chatJSON is a chat message, in the REST API and in signaling alike.
// participant_id and identity are null for a message the server sent.
type chatJSON struct {
	Seq           uint64    `json:"seq"`
	ParticipantID *string   `json:"participant_id"`
	Identity      *string   `json:"identity"`
	Name          string    `json:"name"`
	Text          string    `json:"text"`
	SentAt        time.Time `json:"sent_at"`
}

type chatListJSON struct {
	Messages []chatJSON `json:"messages"`
	Total    int        `json:"total"`
	Limit    int        `json:"limit"`
	Offset   int        `json:"offset"`
}

// chatMsg is the signaling message of a chat message. Its field is
// "chat", not "message", which an error message has as a string.
type chatMsg struct {
	Type string   `json:"type"`
	Chat chatJSON `json:"chat"`
}

func toChatJSON(m actors.ChatMessage) chatJSON {
	out := chatJSON{Seq: m.Seq, Name: m.Name, Text: m.Text, SentAt: m.SentAt.UTC()}
	if m.ParticipantID != "" {
		id, identity := string(m.ParticipantID), m.Identity
		out.ParticipantID, out.Identity = &id, &identity
	}
	return out
}

func toChatList(msgs []actors.ChatMessage) []chatJSON {
	out := make([]chatJSON, len(msgs))
	for i, m := range msgs {
		out[i] = toChatJSON(m)
	}
	return out
}

// listSessionChat is GET /sessions/{id}/chat: the session's chat, oldest
// first, paginated like the other lists.
func (s *Server) listSessionChat(c *gin.Context) error {
	limit, offset, err := pageParams(c.Request.URL.Query())
	if err != nil {
		return err
	}
	msgs, total, err := s.cfg.Rooms.SessionChat(c.Request.Context(), actors.SessionID(c.Param("id")), limit, offset)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusOK, chatListJSON{Messages: toChatList(msgs), Total: total, Limit: limit, Offset: offset})
	return nil
}

// sendChat is POST /rooms/{id}/chat: {"text", "name"?}, a chat message from
// the server to the room's running session.
func (s *Server) sendChat(c *gin.Context) error {
	o, err := requireJSON(c.Request, requestBody(c))
	if err != nil {
		return err
	}
	text, err := requiredString(o, "text")
	if err != nil {
		return err
	}
	name, err := lastOptionalString(o, "name")
	if err != nil {
		return err
	}
	from := ""
	if name != nil {
		from = *name
	}
	msg, err := s.cfg.Rooms.SendChat(c.Request.Context(), actors.RoomID(c.Param("id")), from, text)
	if err != nil {
		return err
	}
	writeJSON(c, http.StatusCreated, toChatJSON(msg))
	return nil
}
