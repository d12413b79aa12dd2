package rtc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// withoutRIDs turns the description of a camera sent in rid layers into
// one of the same layers told apart by SSRC alone, as browsers described
// simulcast before rids: no a=rid or a=simulcast, the layers' SSRCs in an
// a=ssrc-group:SIM.
func withoutRIDs(t *testing.T, desc string, ssrcs []webrtc.SSRC) string {
	t.Helper()
	var out []string
	grouped := false
	for _, line := range strings.Split(desc, "\r\n") {
		if strings.HasPrefix(line, "a=rid:") || strings.HasPrefix(line, "a=simulcast:") {
			continue
		}
		if !grouped && strings.HasPrefix(line, "a=ssrc-group:") {
			group := "a=ssrc-group:SIM"
			for _, s := range ssrcs {
				group += fmt.Sprintf(" %d", s)
			}
			out = append(out, group)
			grouped = true
		}
		out = append(out, line)
	}
	if !grouped {
		t.Fatal("the offer declares no SSRCs")
	}
	return strings.Join(out, "\r\n")
}

// TestLoopbackSimulcastBySSRCRefused: an offer of a camera in layers
// told apart by SSRC alone (a=ssrc-group:SIM, no rids) is refused with an
// error that says so, and changes nothing: pion would take the section
// for Plan B and receive its first SSRC only. The same camera offered in
// rid layers is then taken, all three layers.
func TestLoopbackSimulcastBySSRCRefused(t *testing.T) {
	engine, api, _, _ := loopbackRig(t, func(c *Config) { c.NoBandwidthEstimation = true })
	pub := newPeerOwner(t, engine, api)
	camera, err := rtctest.AddSimulcast(pub.client, "PA_pub")
	if err != nil {
		t.Fatal(err)
	}
	ssrcs := camera.SSRCs()
	if len(ssrcs) != len(rtctest.SimulcastRIDs) {
		t.Fatalf("SSRCs %v", ssrcs)
	}
	offer := pub.localOffer().SDP
	var answer string
	pub.call(func() { answer, err = pub.peer.ApplyOffer(withoutRIDs(t, offer, ssrcs)) })
	if !errors.Is(err, ErrInvalidDescription) || !strings.Contains(err.Error(), "ssrc-group:SIM") || answer != "" {
		t.Fatalf("offer by SSRC: answer %q, error %v; want ErrInvalidDescription naming ssrc-group:SIM", answer, err)
	}
	pub.noDesc()

	answer = pub.applyOffer(offer)
	pub.nextDesc(webrtc.SDPTypeAnswer)
	pub.setRemote(webrtc.SDPTypeAnswer, answer)
	pub.waitConnected()
	if err := camera.Negotiated(pub.client); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- camera.Run(ctx, 10*time.Millisecond) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("publish: %v", err)
		}
	}()
	rids := map[string]bool{}
	for range rtctest.SimulcastRIDs {
		select {
		case ev := <-pub.serverTracks:
			rids[ev.Track.RID()] = true
		case <-time.After(peerWait):
			t.Fatalf("the server got the layers %v only", rids)
		}
	}
	for _, rid := range rtctest.SimulcastRIDs {
		if !rids[rid] {
			t.Fatalf("the server got the layers %v, not %q", rids, rid)
		}
	}
}
