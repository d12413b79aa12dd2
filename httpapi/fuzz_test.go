package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/actors/actorpb"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/persistence/recordpb"
)

var fuzzSeeds = []string{
	`{"name":"x"}`,
	`{"id":"abc","name":"n","display_name":"d"}`,
	`{"name":"x","config":{"max_participants":5,"fps":60,"quality":"1080p","layout":"speaker","locked":true}}`,
	`{"name":"x","config":{"join_from":"2030-01-01T00:00:00Z","join_until":"2030-01-02T00:00:00+05:00","remove_after_seconds_elapsed":30}}`,
	`{"name":"x","config":{"join_from":null,"remove_after_seconds_elapsed":null},"webhook":null,"auto_close":null}`,
	`{"name":"x","webhook":{"endpoint":"https://h.example/x","events":["*"],"secret":"s"},"auto_close":{"type":"session-ends","duration":3}}`,
	`{"name":"x","config":{"recording_enabled":true,"record_on_start":true,"session_length":10,"empty_timeout":0}}`,
	`{"name":"x","config":{"fps":"a"}}`,
	`{"name":"x","config":{"max_participants":1e99}}`,
	`{"name":"\u0000"}`,
	`{"name":"x","config":{"join_from":"0000-01-01T00:00:00Z"}}`,
	`{"name":"x","config":{"join_from":"9999-12-31T23:59:59.999999999-23:59"}}`,
	`{"name":"x","extra":{"deep":[1,2,{"a":null}]}}`,
	`{"name":"x","webhook":{"endpoint":"https://h.example","events":null}}`,
	"{\"name\":\"\xff\xfe\"}",
	`[]`, `null`, `"s"`, `{`, ``, `{"name":"x"}{"name":"y"}`,
}

// checkDecodeError: a body that does not decode gets a client error, never
// anything else.
func checkDecodeError(t *testing.T, err error) {
	var ae *apiError
	var ve *actors.ValidationError
	switch {
	case errors.As(err, &ae):
		if ae.status != http.StatusBadRequest && ae.status != http.StatusUnprocessableEntity {
			t.Fatalf("decode error with status %d: %v", ae.status, err)
		}
		if ae.status == http.StatusUnprocessableEntity && ae.details["field"] == "" {
			t.Fatalf("422 without a field: %v", err)
		}
	case errors.As(err, &ve):
		if ve.Field == "" {
			t.Fatalf("validation error without a field: %v", err)
		}
	default:
		t.Fatalf("decode failed with an unexpected error %T: %v", err, err)
	}
}

// checkActorError: a decoded request the actor refuses is refused as
// invalid, never as an internal failure.
func checkActorError(t *testing.T, err error) {
	var ve *actors.ValidationError
	if !errors.As(err, &ve) || ve.Field == "" {
		t.Fatalf("actor refused a decoded request with %T: %v", err, err)
	}
}

func decodeCreateBody(body []byte) (createRequest, error) {
	o, err := parseObject(body)
	if err != nil {
		return createRequest{}, err
	}
	return decodeCreateRoom(o)
}

func FuzzCreateRoomRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	s := newStack(f, nil)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeCreateBody(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("a body that is not UTF-8 decoded: %q", body)
		}
		info, err := s.rooms.Create(ctx, actors.NewRoomID(), req.spec)
		if err != nil {
			checkActorError(t, err)
			return
		}
		if err := actors.ValidateRoom(info.Room); err != nil {
			t.Fatalf("created room fails validation: %v", err)
		}
		// What the API shows decodes back into the same room.
		out, err := json.Marshal(toRoomJSON(info))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"id", "status", "participant_count", "active_session_id", "created_at", "updated_at", "ended_at", "failure", "node_id", "preview_url", "url"} {
			delete(m, k)
		}
		if w, ok := m["webhook"].(map[string]any); ok && info.Room.GetWebhook().GetSecret() != "" {
			w["secret"] = info.Room.GetWebhook().GetSecret()
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := decodeCreateBody(again)
		if err != nil {
			t.Fatalf("rendered room %s does not decode: %v", again, err)
		}
		info2, err := s.rooms.Create(ctx, actors.NewRoomID(), req2.spec)
		if err != nil {
			t.Fatalf("rendered room %s does not create: %v", again, err)
		}
		if !sameRoomFields(info.Room, info2.Room) {
			t.Fatalf("round trip changed the room:\n%v\n%v", info.Room, info2.Room)
		}
	})
}

func sameRoomFields(a, b *recordpb.Room) bool {
	return a.GetName() == b.GetName() && a.GetDisplayName() == b.GetDisplayName() &&
		proto.Equal(a.GetConfig(), b.GetConfig()) && proto.Equal(a.GetWebhook(), b.GetWebhook()) &&
		proto.Equal(a.GetAutoClose(), b.GetAutoClose())
}

func FuzzPatchRoomRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"config":{"max_participants":0}}`))
	f.Add([]byte(`{"display_name":""}`))
	s := newStack(f, nil)
	ctx := context.Background()
	const id = "fuzzed"
	if _, err := s.rooms.Create(ctx, id, mustDecodeSpec(f, `{"name":"Fuzzed"}`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := parseObject(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if !utf8.Valid(body) {
			t.Fatalf("a body that is not UTF-8 decoded: %q", body)
		}
		patch, err := decodeRoomPatch(o)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		before, err := s.rooms.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		after, err := s.rooms.Update(ctx, id, patch)
		if err != nil {
			checkActorError(t, err)
			now, err := s.rooms.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(now.Room, before.Room) {
				t.Fatalf("a refused patch changed the room:\n%v\n%v", before.Room, now.Room)
			}
			return
		}
		if err := actors.ValidateRoom(after.Room); err != nil {
			t.Fatalf("patched room fails validation: %v", err)
		}
	})
}

func mustDecodeSpec(tb testing.TB, body string) *actorpb.RoomPatch {
	tb.Helper()
	req, err := decodeCreateBody([]byte(body))
	if err != nil {
		tb.Fatal(err)
	}
	return req.spec
}

// FuzzOfferCheckedBeforeJoin: a WHIP or WHEP offer is refused with a client error before its join,
// or a real participant takes it and answers with media. Nothing between:
// an offer the checks let through must never fail after the join.
func FuzzOfferCheckedBeforeJoin(f *testing.F) {
	s := newMediaStack(f, nil)
	s.createRoom(f, `{"id":"fuzz","name":"Fuzz","config":{"max_participants":1000}}`)
	pc := transceiverPeer(f, clientAPI(f), webrtc.RTPTransceiverDirectionSendonly, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio)
	send := gatheredOffer(f, pc)
	recv := strings.ReplaceAll(send, "a=sendonly", "a=recvonly")
	for _, o := range []string{send, recv} {
		f.Add(false, o)
		f.Add(true, o)
		for _, drop := range []string{"a=ice-ufrag", "a=ice-pwd", "a=fingerprint", "a=mid", "a=rtpmap", "a=group", "a=setup", "a=candidate", "c="} {
			var keep []string
			for _, l := range strings.SplitAfter(o, "\n") {
				if !strings.HasPrefix(l, drop) {
					keep = append(keep, l)
				}
			}
			f.Add(strings.Contains(o, "recvonly"), strings.Join(keep, ""))
		}
		f.Add(false, strings.ReplaceAll(o, "VP8/90000", "X/90000"))
		f.Add(false, strings.ReplaceAll(o, "m=video 9", "m=video 0"))
		f.Add(false, strings.ReplaceAll(o, "sha-256", "md2"))
		f.Add(false, strings.ReplaceAll(o, "a=setup:actpass", "a=setup:holdconn"))
	}
	f.Add(false, "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
	tokens := map[actors.ClientKind]string{
		actors.ClientWHIP: s.joinToken(f, "fuzz", "p", auth.RolePublisher),
		actors.ClientWHEP: s.joinToken(f, "fuzz", "s", auth.RoleSubscriber),
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, whep bool, offer string) {
		kind := actors.ClientWHIP
		if whep {
			kind = actors.ClientWHEP
		}
		err := actors.ValidateOffer(kind, offer)
		if err == nil {
			err = s.rooms.CheckOffer(kind, offer)
		}
		if err != nil {
			ae, unexpected := toAPIError(err)
			if unexpected || ae.status != http.StatusBadRequest && ae.status != http.StatusUnprocessableEntity {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		claims, err := s.api.verify(tokens[kind])
		if err != nil {
			t.Fatal(err)
		}
		w := &whipSession{identity: claims.Subject, kind: kind, live: &s.api.live}
		p, _, err := s.rooms.Join(ctx, "fuzz", joinRequest(claims, kind, w))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Leave(ctx, actors.ReasonLeft)
		answer, err := p.Offer(ctx, offer)
		if err != nil {
			t.Fatalf("an offer the checks took fails after the join: %v\n%s", err, offer)
		}
		if err := w.register(p); err != nil && !errors.Is(err, actors.ErrParticipantNotFound) {
			t.Fatal(err) // not found: the next input's join replaced it
		}
		var d sdp.SessionDescription
		if err := d.UnmarshalString(answer); err != nil {
			t.Fatal(err)
		}
		for _, m := range d.MediaDescriptions {
			if m.MediaName.Port.Value != 0 {
				return
			}
		}
		t.Fatalf("an offer the checks took has every section rejected:\n%s", answer)
	})
}
