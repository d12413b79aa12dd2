package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/internal/poll"
	"github.com/troupe-media/troupe/rtc/rtctest"
)

// A REST call, a WebSocket join, a WHIP publish and a WHEP view, each sent
// to a node that does not own the room, reach the owner: the members are
// in the owner's room, every ICE candidate they are given is the owner's,
// and media flows between them with no loss.
func TestRouting(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	entry := c.Live()[0]
	owner := createRoom(t, c, entry, "routed")
	others := nonOwners(c, owner)
	if len(others) < 2 {
		t.Fatalf("want two nodes besides the owner %s, have %d", owner.ID, len(others))
	}
	via1, via2 := others[0], others[1]

	// REST through a non-owner.
	resp := c.Expect(via1, http.StatusOK, "GET", "/api/v1/rooms/routed", nil)
	if !bytes.Contains(resp.Body, []byte(`"id":"routed"`)) {
		t.Fatalf("room through %s: %s", via1.ID, resp.Body)
	}

	// WebSocket: a publisher through one non-owner, a subscriber through
	// the other.
	pub := join(t, c, via1, "routed", "alice", "publisher")
	if err := pub.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	sub := join(t, c, via2, "routed", "bob", "subscriber")
	checkCandidates(t, "alice's", pub.CandidateIPs(), owner)
	video := waitReceiver(t, sub, "video")
	audio := waitReceiver(t, sub, "audio")
	if got := identities(t, c, owner, "routed"); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("members in the owner's room: %v", got)
	}
	checkCandidates(t, "bob's", sub.CandidateIPs(), owner)
	waitPackets(t, "bob's video", video, 60)
	waitPackets(t, "bob's audio", audio, 100)
	checkNoLoss(t, "bob's video", video)
	checkNoLoss(t, "bob's audio", audio)

	// WHIP through one non-owner, WHEP through the other.
	whipTok, err := c.JoinToken(ctx, via2, "routed", "carol", "publisher")
	if err != nil {
		t.Fatal(err)
	}
	whip := newWHIPPublisher(t)
	answer := whipPost(t, c, via2, "/whip/routed", whipTok, whip.offer(t))
	checkCandidates(t, "the WHIP answer's", sdpCandidateIPs(answer), owner)
	whip.start(t, answer)
	// A WHEP viewer gets the tracks published when it joins: wait for
	// carol's.
	poll.Until(t, "carol's tracks to be published", func() bool { return trackCount(t, c, owner, "routed", "carol") == 2 })

	whepTok, err := c.JoinToken(ctx, via1, "routed", "dave", "subscriber")
	if err != nil {
		t.Fatal(err)
	}
	viewer := newWHEPViewer(t)
	answer = whipPost(t, c, via1, "/whep/routed", whepTok, viewer.offer(t))
	checkCandidates(t, "the WHEP answer's", sdpCandidateIPs(answer), owner)
	viewer.start(t, answer)
	// dave receives a video and an audio track of the room.
	for _, r := range append(viewer.waitTracks(t, "video", 1), viewer.waitTracks(t, "audio", 1)...) {
		waitPackets(t, "dave's "+r.Track().Kind().String(), r, 60)
		checkNoLoss(t, "dave's "+r.Track().Kind().String(), r)
	}
	if got := identities(t, c, owner, "routed"); !slices.Equal(got, []string{"alice", "bob", "carol", "dave"}) {
		t.Fatalf("members in the owner's room: %v", got)
	}
	if bad := append(pub.BadMessages(), sub.BadMessages()...); len(bad) > 0 {
		t.Errorf("non-JSON server messages: %q", bad)
	}
}

// createRoom creates room id, named as its id, through node via and
// returns the node that owns it.
func createRoom(tb testing.TB, c *Cluster, via *Node, id string) *Node {
	tb.Helper()
	c.Expect(via, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": id, "name": id})
	owner, err := c.Owner(tb.Context(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return owner
}

// nonOwners lists the live nodes other than owner.
func nonOwners(c *Cluster, owner *Node) []*Node {
	var out []*Node
	for _, n := range c.Live() {
		if n != owner {
			out = append(out, n)
		}
	}
	return out
}

// join joins room through n; the member leaves when the test ends.
func join(t *testing.T, c *Cluster, n *Node, room, identity, role string) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	m, err := c.Join(ctx, n, room, identity, role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// checkCandidates fails the test unless every candidate address is the
// owner's, and there is one.
func checkCandidates(t *testing.T, what string, ips []string, owner *Node) {
	t.Helper()
	if len(ips) == 0 {
		t.Errorf("%s candidates: none", what)
	}
	for _, ip := range ips {
		if ip != owner.IP {
			t.Errorf("%s candidates %v: %s is not the owner's address %s", what, ips, ip, owner.IP)
		}
	}
}

// sdpCandidateIPs lists the candidate addresses of an SDP.
func sdpCandidateIPs(sdp string) []string {
	var out []string
	for _, line := range strings.Split(sdp, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok {
			if ip, ok := CandidateIP(c); ok {
				out = append(out, ip)
			}
		}
	}
	return out
}

// identities lists the identities of room's members as node n answers.
func identities(t *testing.T, c *Cluster, n *Node, room string) []string {
	t.Helper()
	var list []struct {
		Identity string `json:"identity"`
	}
	if err := c.Expect(n, http.StatusOK, "GET", "/api/v1/rooms/"+room+"/participants", nil).JSON(&list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range list {
		out = append(out, p.Identity)
	}
	slices.Sort(out)
	return out
}

// trackCount is how many tracks identity publishes in room, as node n
// answers.
func trackCount(t *testing.T, c *Cluster, n *Node, room, identity string) int {
	t.Helper()
	var list []struct {
		Identity string           `json:"identity"`
		Tracks   []map[string]any `json:"tracks"`
	}
	if err := c.Expect(n, http.StatusOK, "GET", "/api/v1/rooms/"+room+"/participants", nil).JSON(&list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		if p.Identity == identity {
			return len(p.Tracks)
		}
	}
	return 0
}

func waitReceiver(t *testing.T, m *Member, kind string) *rtctest.Receiver {
	t.Helper()
	var r *rtctest.Receiver
	poll.Until(t, m.ParticipantID()+"'s "+kind+" track", func() bool {
		r = m.Receiver(kind)
		return r != nil
	})
	return r
}

// waitPackets waits until r has received n packets.
func waitPackets(t *testing.T, what string, r *rtctest.Receiver, n int) {
	t.Helper()
	poll.Until(t, what+" to receive packets", func() bool { return r.Stats().Packets >= n })
}

// checkNoLoss fails the test if r missed, reordered or saw damaged a
// packet since its first.
func checkNoLoss(t *testing.T, what string, r *rtctest.Receiver) {
	t.Helper()
	if st := r.Stats(); st.Lost() != 0 || st.Corrupt != 0 || st.OutOfOrder != 0 {
		t.Errorf("%s: %d lost, %d damaged, %d out of order of %d", what, st.Lost(), st.Corrupt, st.OutOfOrder, st.Packets)
	}
}

// whipPost sends an SDP offer to a WHIP or WHEP path of node n and
// returns the answer.
func whipPost(t *testing.T, c *Cluster, n *Node, path, token, offer string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.URL+path, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Send(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated {
		t.Fatalf("POST %s%s: %d %s", n.ID, path, resp.Status, resp.Body)
	}
	return string(resp.Body)
}

// whipPeer is a WHIP publisher or a WHEP viewer: one peer connection that
// offers, with all its candidates, in one request.
type whipPeer struct {
	pc      *webrtc.PeerConnection
	senders []*rtctest.Sender
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu     sync.Mutex
	tracks map[string]*rtctest.Receiver // by stream id/kind
}

func newPeer(t *testing.T) *whipPeer {
	t.Helper()
	api, err := rtctest.ClientAPI()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &whipPeer{pc: pc, cancel: func() {}, tracks: map[string]*rtctest.Receiver{}}
	t.Cleanup(func() {
		p.cancel()
		_ = pc.Close()
		p.wg.Wait()
	})
	return p
}

// newWHIPPublisher sends a VP8 and an Opus track once started.
func newWHIPPublisher(t *testing.T) *whipPeer {
	p := newPeer(t)
	for _, codec := range []webrtc.RTPCodecCapability{rtctest.VP8, rtctest.Opus} {
		kind := strings.SplitN(codec.MimeType, "/", 2)[0]
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, kind, "whip")
		if err != nil {
			t.Fatal(err)
		}
		tc, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		s := &rtctest.Sender{Track: tr, PayloadSize: audioPayload, TimestampStep: 960}
		if kind == "video" {
			s.PayloadSize, s.TimestampStep, s.KeyframeEvery = videoPayload, 3000, 30
		}
		p.senders = append(p.senders, s)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			s.ServeKeyframeRequests(tc.Sender())
		}()
	}
	return p
}

// newWHEPViewer receives a room's tracks.
func newWHEPViewer(t *testing.T) *whipPeer {
	p := newPeer(t)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	p.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := rtctest.NewReceiver(tr)
		p.mu.Lock()
		p.tracks[tr.StreamID()+"/"+tr.Kind().String()] = r
		p.mu.Unlock()
		r.Run()
	})
	return p
}

func (p *whipPeer) offer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sdp, err := rtctest.GatheredOffer(ctx, p.pc)
	if err != nil {
		t.Fatal(err)
	}
	return sdp
}

// start applies the answer and, for a publisher, starts sending.
func (p *whipPeer) start(t *testing.T, answer string) {
	t.Helper()
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, s := range p.senders {
		interval := audioInterval
		if s.PayloadSize == videoPayload {
			interval = videoInterval
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = s.Run(ctx, 0, interval)
		}()
	}
}

// waitTracks waits until n tracks of kind have packets, and returns them.
func (p *whipPeer) waitTracks(t *testing.T, kind string, n int) []*rtctest.Receiver {
	t.Helper()
	var out []*rtctest.Receiver
	poll.Until(t, "the viewer's "+kind+" tracks", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		out = out[:0]
		for k, r := range p.tracks {
			if strings.HasSuffix(k, "/"+kind) && r.Stats().Packets > 0 {
				out = append(out, r)
			}
		}
		return len(out) >= n
	})
	return out
}

// Placement: new rooms go to the least loaded live node, whichever node
// creates them, and a room names its owner in node_id.
func TestPlacementSpreadsRooms(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	entry := c.Live()[0]
	perNode := map[string]int{}
	for i := range 6 {
		id := "spread" + string(rune('a'+i))
		c.Expect(entry, http.StatusCreated, "POST", "/api/v1/rooms", map[string]any{"id": id, "name": id})
		// A member makes the room's load count.
		join(t, c, entry, id, "m", "subscriber")
		o, err := c.Owner(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		perNode[o.ID]++
		var room struct {
			NodeID string `json:"node_id"`
		}
		if err := c.Expect(entry, http.StatusOK, "GET", "/api/v1/rooms/"+id, nil).JSON(&room); err != nil {
			t.Fatal(err)
		}
		if room.NodeID != o.ID {
			t.Errorf("room %s: node_id %q, its owner is %s", id, room.NodeID, o.ID)
		}
	}
	for _, n := range c.Live() {
		if perNode[n.ID] == 0 {
			t.Errorf("%s got none of 6 rooms created through %s: %v", n.ID, entry.ID, perNode)
		}
	}
}

// A WebSocket opened without a token on a node that does not own the room
// is forwarded once its first message, join, names the room.
func TestJoinMessageForwarded(t *testing.T) {
	c := startCluster(t, Config{})
	ctx := t.Context()
	owner := createRoom(t, c, c.Live()[0], "late")
	via := nonOwners(c, owner)[0]
	token, err := c.JoinToken(ctx, via, "late", "carol", "subscriber")
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+via.URL[len("http://"):]+"/rtc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	join, _ := json.Marshal(map[string]string{"type": "join", "token": token})
	if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var joined struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(msg, &joined); err != nil || joined.Type != "joined" {
		t.Fatalf("first message %s (%v), want joined", msg, err)
	}
	if got := identities(t, c, owner, "late"); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("members in the owner's room: %v", got)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}
