package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc"
)

// dataPeer is a signaling client with its data channels open, and the
// relayed messages it has received on them.
type dataPeer struct {
	*wsClient
	dcs *clientDataChannels

	mu  sync.Mutex // guards got
	got []map[string]any
}

type clientDataChannels struct{ reliable, lossy *webrtc.DataChannel }

func (s *stack) dialData(t *testing.T, room, identity string) *dataPeer {
	t.Helper()
	return s.dialDataWith(t, room, identity, s.joinToken(t, room, identity, auth.RolePublisher))
}

// dialDataWith is dialData with a token of the test's own.
func (s *stack) dialDataWith(t *testing.T, room, identity, token string) *dataPeer {
	t.Helper()
	p := &dataPeer{wsClient: s.dialWS(t, identity, token)}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	dcs, err := p.OpenData(ctx, rtc.DataLabelReliable, rtc.DataLabelLossy)
	if err != nil {
		t.Fatal(err)
	}
	p.dcs = &clientDataChannels{reliable: dcs.Reliable, lossy: dcs.Lossy}
	open := make(chan struct{})
	var once sync.Once
	dcs.Reliable.OnOpen(func() { once.Do(func() { close(open) }) })
	for _, dc := range []*webrtc.DataChannel{dcs.Reliable, dcs.Lossy} {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			var v map[string]any
			head, payload := m.Data, []byte(nil)
			if !m.IsString && len(m.Data) >= 3 { // version, header length, header, payload
				n := int(m.Data[1])<<8 | int(m.Data[2])
				head, payload = m.Data[3:3+n], m.Data[3+n:]
			}
			if err := json.Unmarshal(head, &v); err != nil {
				t.Errorf("%s: relayed %q: %v", identity, m.Data, err)
				return
			}
			if payload != nil {
				v["payload"] = payload
			}
			p.mu.Lock()
			p.got = append(p.got, v)
			p.mu.Unlock()
		})
	}
	poll.Closed(t, identity+": the reliable channel to open", open)
	// The server takes the channel a moment after the client sees it open:
	// until then, messages to the room pass this client by. The server's
	// own message to it says when it is in.
	body := `{"topic":"ready","data":"","to":["` + p.ParticipantID() + `"]}`
	poll.Until(t, identity+" reachable by data messages", func() bool {
		r := s.do(t, http.MethodPost, "/api/v1/rooms/"+room+"/data", body)
		return r.status == http.StatusOK && r.json(t)["receivers"] == 1.0
	})
	p.waitData(t, 1)
	p.mu.Lock()
	p.got = nil
	p.mu.Unlock()
	return p
}

func (p *dataPeer) waitData(t *testing.T, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	poll.Until(t, p.name+": data messages", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		out = append(out[:0], p.got...)
		return len(out) >= n
	})
	return out
}

func TestDataMessages(t *testing.T) {
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"data","name":"Data"}`)
	a := s.dialData(t, "data", "alice")
	b := s.dialData(t, "data", "bob")
	bob := b.ParticipantID()

	// A participant's message reaches the others, tagged with its sender.
	if err := a.dcs.reliable.SendText(`{"topic":"greet","data":"hello"}`); err != nil {
		t.Fatal(err)
	}
	got := b.waitData(t, 1)[0]
	if got["topic"] != "greet" || got["data"] != "hello" || got["from"] != a.ParticipantID() || got["identity"] != "alice" {
		t.Fatalf("bob received %v", got)
	}
	// A bad one is refused, and its sender told why over signaling.
	if err := a.dcs.reliable.SendText(`{"topic":"greet"}`); err != nil {
		t.Fatal(err)
	}
	e := a.waitMsg(msgError, func(m map[string]any) bool { return m["request"] == "data" })
	if e["code"] != codeInvalidDataMessage {
		t.Fatalf("alice told %v", e)
	}
	if err := a.dcs.reliable.SendText(`{"topic":"dm","to":["PA_nobody"],"data":"x"}`); err != nil {
		t.Fatal(err)
	}
	a.waitMsg(msgError, func(m map[string]any) bool { return m["code"] == codeUnknownTarget })

	// The server's messages: to everyone, then to bob alone.
	r := s.do(t, http.MethodPost, "/api/v1/rooms/data/data", `{"topic":"notice","data":"from the server"}`)
	mustStatus(t, r, http.StatusOK)
	if n := r.json(t)["receivers"]; n != 2.0 {
		t.Fatalf("receivers = %v, want 2", n)
	}
	if got := a.waitData(t, 1)[0]; got["topic"] != "notice" || got["from"] != nil {
		t.Fatalf("alice received %v", got)
	}
	r = s.do(t, http.MethodPost, "/api/v1/rooms/data/data", `{"topic":"dm","data_base64":"AQID","to":["`+bob+`"],"lossy":true}`)
	mustStatus(t, r, http.StatusOK)
	if n := r.json(t)["receivers"]; n != 1.0 {
		t.Fatalf("receivers = %v, want 1", n)
	}

	// Every refusal names the field to blame.
	for _, tt := range []struct {
		body   string
		status int
		code   string
		field  string
	}{
		{`{"data":"x"}`, http.StatusUnprocessableEntity, codeValidationFailed, "topic"},
		{`{"topic":"t"}`, http.StatusUnprocessableEntity, codeValidationFailed, "data"},
		{`{"topic":"t","data":"x","data_base64":"eA=="}`, http.StatusUnprocessableEntity, codeValidationFailed, "data"},
		{`{"topic":"t","data_base64":"!!"}`, http.StatusUnprocessableEntity, codeValidationFailed, "data_base64"},
		{`{"topic":"a b","data":"x"}`, http.StatusUnprocessableEntity, codeInvalidDataMessage, "topic"},
		{`{"topic":"t","data":"x","to":["` + strings.Repeat("P", 300) + `"]}`, http.StatusUnprocessableEntity, codeInvalidDataMessage, "to"},
		{`{"topic":"t","data":"x","to":["PA_nobody"]}`, http.StatusUnprocessableEntity, codeUnknownTarget, "to"},
		{`{"topic":"t","data":"x","to":[]}`, http.StatusUnprocessableEntity, codeValidationFailed, "to"},
		{`{"topic":"t","data":"x","extra":1}`, http.StatusUnprocessableEntity, codeValidationFailed, "extra"},
	} {
		r := s.do(t, http.MethodPost, "/api/v1/rooms/data/data", tt.body)
		if r.status != tt.status || r.errorCode(t) != tt.code || r.errorField(t) != tt.field {
			t.Errorf("%.80s: %d %s, want %d %s on %s", tt.body, r.status, r.body, tt.status, tt.code, tt.field)
		}
	}
	big := strings.Repeat("x", rtc.MaxLossyMessage)
	r = s.do(t, http.MethodPost, "/api/v1/rooms/data/data", `{"topic":"t","lossy":true,"data":"`+big+`"}`)
	if r.status != http.StatusRequestEntityTooLarge || r.errorCode(t) != codeDataTooLarge {
		t.Fatalf("oversized lossy message: %d %s", r.status, r.body)
	}
	r = s.do(t, http.MethodPost, "/api/v1/rooms/nope/data", `{"topic":"t","data":"x"}`)
	if r.status != http.StatusNotFound {
		t.Fatalf("data to a room that does not exist: %d %s", r.status, r.body)
	}
	// Bob's binary message came on his lossy channel (as JSON envelope plus
	// payload: the framing is checked in rtc). It may pass the room
	// message, sent before it on the reliable channel: the two channels
	// keep no order between them.
	msgs := b.waitData(t, 3)[1:]
	if msgs[0]["topic"] == "dm" {
		msgs[0], msgs[1] = msgs[1], msgs[0]
	}
	if got := msgs[1]; got["topic"] != "dm" || string(got["payload"].([]byte)) != "\x01\x02\x03" || msgs[0]["topic"] != "notice" {
		t.Fatalf("bob's binary message: %v (after %v)", got, msgs[0])
	}
}
