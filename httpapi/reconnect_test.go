package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"

	"github.com/troupe-media/troupe/bench/client"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// session is a bench/client Session whose receivers the test reads: the
// last one of each kind, which is the current connection's.
type session struct {
	*client.Session
	tracks kindReceivers
}

func (s *stack) connect(t *testing.T, token string, rc client.Reconnect) *session {
	t.Helper()
	ss := &session{}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	var err error
	ss.Session, err = client.Connect(ctx, client.Config{
		URL: s.srv.URL, Token: token, API: clientAPI(t), JoinMessage: true,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
		OnTrack: ss.tracks.onTrack,
	}, rc)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	return ss
}

func (ss *session) receiver(kind string) *rtctest.Receiver { return ss.tracks.last(kind) }

// publishing returns a Reconnect whose OnConnect publishes p's tracks on
// every connection.
func publishing(p *publisher) client.Reconnect {
	return client.Reconnect{OnConnect: func(ctx context.Context, c *client.Client) error {
		senders, err := c.Publish(ctx, p.video.Track, p.audio.Track)
		if err != nil {
			return err
		}
		p.serveKeyframes(p.video, senders[0])
		p.serveKeyframes(p.audio, senders[1])
		return nil
	}}
}

// The server drops every room (as a cluster node that lost its lease
// does): the publisher and the subscriber join again by themselves, with
// new peer connections, and media flows again.
func TestClientReconnectsAfterRoomsDropped(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"again","name":"Again"}`)
	p := newPublisher(t)
	pub := s.connect(t, s.joinToken(t, "again", "pub", auth.RolePublisher), publishing(p))
	t.Cleanup(func() {
		p.halt()
		_ = pub.Close()
		p.wait()
	})
	p.run(t)
	sub := s.connect(t, s.joinToken(t, "again", "sub", auth.RoleSubscriber), client.Reconnect{})
	poll.Until(t, "video before the drop", func() bool {
		r := sub.receiver("video")
		return r != nil && r.Stats().Packets > 0
	})
	before := sub.receiver("video")
	firstPub, firstSub := pub.Client().ParticipantID(), sub.Client().ParticipantID()

	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	if err := s.rooms.DropAll(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "both reconnected and video on a new track", func() bool {
		r := sub.receiver("video")
		return pub.Stats().Reconnects >= 1 && sub.Stats().Reconnects >= 1 &&
			r != nil && r != before && r.Stats().Packets > 0
	})
	if pub.Client().ParticipantID() == firstPub || sub.Client().ParticipantID() == firstSub {
		t.Errorf("participant ids %s, %s after the drop: want new participants", pub.Client().ParticipantID(), sub.Client().ParticipantID())
	}
	if st := sub.Stats(); st.Outage <= 0 {
		t.Errorf("subscriber stats %+v: want the time without media counted", st)
	}
	if n := len(s.participants(t, "again")); n != 2 {
		t.Errorf("%d participants after the reconnection, want 2", n)
	}
	select {
	case <-sub.Done():
		t.Fatalf("subscriber session ended: %v", sub.Err())
	default:
	}
}

// A participant that is kicked, and one whose join is refused for good,
// do not come back.
func TestClientDoesNotReconnectWhenKicked(t *testing.T) {
	checkLeaks(t)
	s := newMediaStack(t, nil)
	s.createRoom(t, `{"id":"kick","name":"Kick"}`)
	sub := s.connect(t, s.joinToken(t, "kick", "bob", auth.RoleSubscriber), client.Reconnect{})
	mustStatus(t, s.do(t, http.MethodDelete, "/api/v1/rooms/kick/participants/"+sub.Client().ParticipantID(), ""), http.StatusNoContent)
	poll.Closed(t, "the kicked session to end", sub.Done())
	if err := sub.Err(); !errors.Is(err, client.ErrFinal) {
		t.Errorf("session error %v, want ErrFinal", err)
	}
	if st := sub.Stats(); st.Reconnects != 0 {
		t.Errorf("stats %+v after a kick, want no reconnection", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), poll.Timeout)
	defer cancel()
	_, err := client.Connect(ctx, client.Config{URL: s.srv.URL, Token: s.joinToken(t, "nowhere", "carol", auth.RoleSubscriber), API: clientAPI(t)}, client.Reconnect{})
	var refused *client.RefusedError
	if !errors.As(err, &refused) || refused.Status != http.StatusNotFound || refused.Code != "room_not_found" || refused.Retryable() {
		t.Errorf("join of a missing room: %v, want a final 404 room_not_found", err)
	}
}
