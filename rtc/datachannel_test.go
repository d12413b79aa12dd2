package rtc

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// dataClient is a pion client with its data channels to a Peer, and what
// it has received on them.
type dataClient struct {
	o               *peerOwner
	ep              *DataEndpoint
	reliable, lossy *webrtc.DataChannel

	mu       sync.Mutex // guards the following
	got      []relayed
	refusals []error
}

// relayed is a received frame, its envelope read.
type relayed struct {
	Topic    string   `json:"topic"`
	From     string   `json:"from"`
	Identity string   `json:"identity"`
	To       []string `json:"to"`
	Data     string   `json:"data"`
	lossy    bool
	binary   []byte
}

// newDataClient joins id to relay and connects its client, with both
// channels open (only the reliable one when lossy is false).
func newDataClient(t *testing.T, engine *Engine, relay *DataRelay, id string, lossy bool) *dataClient {
	t.Helper()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	c := &dataClient{o: newPeerOwner(t, engine, api)}
	c.ep = relay.Join(DataSender{ID: id, Identity: "user-" + id}, func(err error) {
		c.mu.Lock()
		c.refusals = append(c.refusals, err)
		c.mu.Unlock()
	})
	t.Cleanup(c.ep.Close)
	c.o.call(func() { c.o.peer.AcceptData(c.ep) })
	if c.reliable, err = c.o.client.CreateDataChannel(DataLabelReliable, nil); err != nil {
		t.Fatal(err)
	}
	c.listen(c.reliable, false)
	if lossy {
		ordered, none := false, uint16(0)
		if c.lossy, err = c.o.client.CreateDataChannel(DataLabelLossy, &webrtc.DataChannelInit{Ordered: &ordered, MaxRetransmits: &none}); err != nil {
			t.Fatal(err)
		}
		c.listen(c.lossy, true)
	}
	c.o.clientOffer()
	c.o.waitConnected()
	poll.Until(t, id+"'s channels open on the server", func() bool {
		return c.ep.reliable.Load() != nil && (!lossy || c.ep.lossy.Load() != nil)
	})
	return c
}

func (c *dataClient) listen(dc *webrtc.DataChannel, lossy bool) {
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		r := relayed{lossy: lossy}
		head := m.Data
		if !m.IsString {
			n := int(binary.BigEndian.Uint16(m.Data[1:3]))
			head, r.binary = m.Data[3:3+n], m.Data[3+n:]
		}
		if err := json.Unmarshal(head, &r); err != nil {
			c.o.t.Errorf("relayed frame %q: %v", m.Data, err)
		}
		c.mu.Lock()
		c.got = append(c.got, r)
		c.mu.Unlock()
	})
}

func (c *dataClient) received() []relayed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]relayed(nil), c.got...)
}

func (c *dataClient) refused() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.refusals...)
}

func (c *dataClient) waitFor(t *testing.T, n int) []relayed {
	t.Helper()
	poll.Until(t, fmt.Sprintf("%d messages", n), func() bool { return len(c.received()) >= n })
	return c.received()
}

func sendText(t *testing.T, dc *webrtc.DataChannel, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.SendText(string(b)); err != nil {
		t.Fatal(err)
	}
}

func binaryFrame(t *testing.T, head map[string]any, payload []byte) []byte {
	t.Helper()
	h, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	out := []byte{dataFrameVersion, 0, 0}
	binary.BigEndian.PutUint16(out[1:], uint16(len(h)))
	return append(append(out, h...), payload...)
}

func newDataTest(t *testing.T, cfg DataRelayConfig) (*DataRelay, *Engine) {
	t.Helper()
	engine := testEngine(t, defaultInterceptors)
	t.Cleanup(func() { _ = engine.Close() })
	if cfg.Metrics == nil {
		cfg.Metrics = NewDataMetrics()
	}
	return NewDataRelay(cfg), engine
}

func TestDataRelayToRoomAndTargets(t *testing.T) {
	relay, engine := newDataTest(t, DataRelayConfig{})
	a := newDataClient(t, engine, relay, "PA_a", true)
	b := newDataClient(t, engine, relay, "PA_b", true)
	c := newDataClient(t, engine, relay, "PA_c", false)

	// Reliable text to the room: everyone but the sender.
	sendText(t, a.reliable, map[string]any{"topic": "greet", "data": "hello"})
	for _, rx := range []*dataClient{b, c} {
		got := rx.waitFor(t, 1)[0]
		if got.Topic != "greet" || got.Data != "hello" || got.From != "PA_a" || got.Identity != "user-PA_a" || got.To != nil || got.lossy {
			t.Fatalf("received %+v", got)
		}
	}
	// Binary to one named participant, on the lossy channel: b gets it on
	// its lossy channel, c (which has none) on its reliable one.
	if err := a.lossy.Send(binaryFrame(t, map[string]any{"topic": "pos", "to": []string{"PA_b", "PA_c"}}, []byte{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	gotB, gotC := b.waitFor(t, 2)[1], c.waitFor(t, 2)[1]
	if gotB.Topic != "pos" || string(gotB.binary) != "\x01\x02\x03" || !gotB.lossy || len(gotB.To) != 2 {
		t.Fatalf("b received %+v", gotB)
	}
	if gotC.Topic != "pos" || gotC.lossy {
		t.Fatalf("c received %+v", gotC)
	}
	// To b alone: c gets nothing more, a (the sender) gets nothing at all.
	sendText(t, a.reliable, map[string]any{"topic": "dm", "to": []string{"PA_b"}, "data": "psst"})
	if got := b.waitFor(t, 3)[2]; got.Data != "psst" {
		t.Fatalf("b received %+v", got)
	}
	// The server's message goes to everyone, untagged; it is the last
	// frame on each reliable channel, so c and a have had all theirs.
	if n, err := relay.Send(DataSender{}, DataMessage{Topic: "notice", Text: true, Payload: []byte("from the server")}); err != nil || n != 3 {
		t.Fatalf("server send: %d, %v", n, err)
	}
	for rx, n := range map[*dataClient]int{a: 1, b: 4, c: 3} {
		all := rx.waitFor(t, n)
		last := all[len(all)-1]
		if last.Topic != "notice" || last.From != "" || last.Identity != "" {
			t.Fatalf("server message received as %+v", last)
		}
	}
	if got := len(c.received()); got != 3 {
		t.Fatalf("c received %d messages, want 3: %+v", got, c.received())
	}
	if got := len(a.received()); got != 1 {
		t.Fatalf("the sender received %d messages, want the server's alone: %+v", got, a.received())
	}
}

// Bad frames are refused with a reason, and change nothing: no one
// receives them, and the sender's good messages still flow.
func TestDataRelayRefusesBadInput(t *testing.T) {
	relay, engine := newDataTest(t, DataRelayConfig{})
	a := newDataClient(t, engine, relay, "PA_a", true)
	b := newDataClient(t, engine, relay, "PA_b", true)
	bad := []struct {
		send func() error
		want error
	}{
		{func() error { return a.reliable.SendText(`{"topic":"x"}`) }, ErrBadDataMessage},
		{func() error { return a.reliable.SendText(`not json`) }, ErrBadDataMessage},
		{func() error { return a.reliable.SendText(`{"topic":"x","data":"y","extra":1}`) }, ErrBadDataMessage},
		{func() error { return a.reliable.SendText(`{"topic":"x","to":["PA_nobody"],"data":"y"}`) }, ErrUnknownTarget},
		{func() error { return a.reliable.Send([]byte{9, 0, 0}) }, ErrBadDataMessage},
		{func() error {
			return a.reliable.SendText(`{"topic":"big","data":"` + strings.Repeat("x", MaxReliableMessage) + `"}`)
		}, ErrDataTooLarge},
		{func() error {
			return a.lossy.SendText(`{"topic":"big","data":"` + strings.Repeat("x", MaxLossyMessage) + `"}`)
		}, ErrDataTooLarge},
	}
	for i, tt := range bad {
		if err := tt.send(); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "refusal", func() bool { return len(a.refused()) > i })
		if err := a.refused()[i]; !errors.Is(err, tt.want) {
			t.Fatalf("bad frame %d refused with %v, want %v", i, err, tt.want)
		}
	}
	sendText(t, a.reliable, map[string]any{"topic": "ok", "data": "fine"})
	if got := b.waitFor(t, 1); len(got) != 1 || got[0].Topic != "ok" {
		t.Fatalf("b received %+v, want the good message alone", got)
	}
	if d := relay.cfg.Metrics.Dropped("too_large"); d != 2 {
		t.Fatalf("too_large drops = %d, want 2", d)
	}
}

// A sender over its rate is dropped and counted, silently; another
// sender's messages keep flowing. The manual clock stands still, so the
// limit is the burst exactly.
func TestDataRelayRate(t *testing.T) {
	clk := clock.NewManual(time.Unix(1_700_000_000, 0))
	relay, engine := newDataTest(t, DataRelayConfig{MessagesPerSecond: 5, Clock: clk})
	a := newDataClient(t, engine, relay, "PA_a", false)
	b := newDataClient(t, engine, relay, "PA_b", false)
	c := newDataClient(t, engine, relay, "PA_c", false)
	for i := range 20 {
		sendText(t, a.reliable, map[string]any{"topic": "flood", "data": fmt.Sprint(i)})
	}
	poll.Until(t, "the flood counted", func() bool { return relay.cfg.Metrics.Dropped("rate") == 15 })
	sendText(t, c.reliable, map[string]any{"topic": "calm", "data": "still here"})
	got := b.waitFor(t, 6)
	if last := got[len(got)-1]; last.Topic != "calm" || len(got) != 6 {
		t.Fatalf("b received %d messages, the last %+v; want 5 of the flood and c's", len(got), last)
	}
	if len(a.refused()) != 0 {
		t.Fatalf("a flood over the rate is told: %v", a.refused())
	}
	clk.Advance(time.Second) // a second's worth again
	sendText(t, a.reliable, map[string]any{"topic": "flood", "data": "later"})
	if got := b.waitFor(t, 7); got[6].Data != "later" {
		t.Fatalf("after a second: %+v", got[6])
	}
}

// A receiver that takes nothing (its writer stuck behind a full channel)
// drops what does not fit its queue; the sender and the others go on.
func TestDataRelaySlowReceiverIsBounded(t *testing.T) {
	relay, engine := newDataTest(t, DataRelayConfig{Queue: 4, MessagesPerSecond: 1000})
	a := newDataClient(t, engine, relay, "PA_a", false)
	b := newDataClient(t, engine, relay, "PA_b", false)
	// A receiver whose queue nobody drains: joined, with a channel that
	// counts as open, and its writer stopped.
	slow := relay.Join(DataSender{ID: "PA_slow"}, nil)
	slow.reliable.Store(b.ep.reliable.Load())
	close(slow.stop)
	<-slow.done
	// One at a time, each received by b before the next, so that b's own
	// queue never holds more than one.
	for i := range 20 {
		sendText(t, a.reliable, map[string]any{"topic": "t", "data": fmt.Sprint(i)})
		b.waitFor(t, i+1)
	}
	if d := relay.cfg.Metrics.Dropped("queue_full"); d != 16 {
		t.Fatalf("queue_full drops = %d, want 16: the 20 messages less the slow receiver's queue of 4", d)
	}
	relay.leave(slow)
}

func TestParseDataMessage(t *testing.T) {
	good := []struct {
		frame []byte
		text  bool
		want  DataMessage
	}{
		{[]byte(`{"topic":"chat","data":"hi"}`), true, DataMessage{Topic: "chat", Payload: []byte("hi"), Text: true}},
		{[]byte(`{"topic":"t","to":["PA_1"],"data":""}`), true, DataMessage{Topic: "t", To: []string{"PA_1"}, Payload: []byte{}, Text: true}},
		{append([]byte{1, 0, 13}, `{"topic":"b"}xyz`...), false, DataMessage{Topic: "b", Payload: []byte("xyz")}},
	}
	for _, tt := range good {
		got, err := ParseDataMessage(tt.frame, tt.text)
		if err != nil || got.Topic != tt.want.Topic || string(got.Payload) != string(tt.want.Payload) || len(got.To) != len(tt.want.To) || got.Text != tt.want.Text {
			t.Errorf("%q: %+v, %v; want %+v", tt.frame, got, err, tt.want)
		}
	}
	bad := []struct {
		frame string
		text  bool
	}{
		{``, true}, {`[]`, true}, {`{"data":"x"}`, true}, {`{"topic":"","data":"x"}`, true},
		{`{"topic":"a b","data":"x"}`, true}, {`{"topic":"` + strings.Repeat("t", 65) + `","data":"x"}`, true},
		{`{"topic":"t","to":[],"data":"x"}`, true}, {`{"topic":"t","to":[""],"data":"x"}`, true},
		{`{"topic":"t","data":"x"} {}`, true}, {`{"topic":"t","data":1}`, true},
		{"\x01\x00", false}, {"\x02\x00\x02{}", false}, {"\x01\x00\x09{}", false},
		{"\x01\x00\x18{\"topic\":\"t\",\"data\":\"x\"}", false},
	}
	for _, tt := range bad {
		if _, err := ParseDataMessage([]byte(tt.frame), tt.text); !errors.Is(err, ErrBadDataMessage) {
			t.Errorf("%q: %v, want ErrBadDataMessage", tt.frame, err)
		}
	}
}

func FuzzParseDataMessage(f *testing.F) {
	f.Add([]byte(`{"topic":"chat","data":"hi"}`), true)
	f.Add([]byte(`{"topic":"t","to":["PA_1","PA_2"],"data":"x"}`), true)
	f.Add(append([]byte{1, 0, 13}, `{"topic":"b"}xyz`...), false)
	f.Fuzz(func(t *testing.T, frame []byte, text bool) {
		msg, err := ParseDataMessage(frame, text)
		if err != nil {
			if !errors.Is(err, ErrBadDataMessage) {
				t.Fatalf("error %v does not wrap ErrBadDataMessage", err)
			}
			return
		}
		if validTopic(msg.Topic) != nil || len(msg.To) > MaxDataTargets {
			t.Fatalf("accepted %+v", msg)
		}
		// What the relay sends on parses back to the same message.
		out, err := encodeRelayed(DataSender{}, msg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseDataMessage(out, text)
		if err != nil || again.Topic != msg.Topic || string(again.Payload) != string(msg.Payload) || len(again.To) != len(msg.To) {
			t.Fatalf("relayed %q parses as %+v, %v; want %+v", out, again, err, msg)
		}
	})
}

// A participant joining again replaces its endpoint: the old one is closed
// and the join does not wait on itself.
func TestDataRelayJoinReplaces(t *testing.T) {
	relay := NewDataRelay(DataRelayConfig{})
	first := relay.Join(DataSender{ID: "PA_a"}, nil)
	done := make(chan *DataEndpoint)
	go func() { done <- relay.Join(DataSender{ID: "PA_a"}, nil) }()
	select {
	case second := <-done:
		defer second.Close()
		if got := (*relay.endpoints.Load())["PA_a"]; got != second {
			t.Fatalf("endpoint of PA_a is %p, want the second join's %p", got, second)
		}
	case <-time.After(poll.Timeout):
		t.Fatal("a second Join of the same participant did not return")
	}
	select {
	case <-first.done:
	default:
		t.Fatal("the replaced endpoint's writer still runs")
	}
}
