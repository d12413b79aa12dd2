package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// loopbackPeer is a peer connection of rtctest.ClientAPI, closed when the
// test ends.
var loopbackPeer = rtctest.LoopbackPeer

// publishVideo joins room through s by WHIP with a pion peer on loopback
// UDP that sends synthetic VP8, a packet every interval, until the test
// ends.
func publishVideo(t testing.TB, s *testServer, room string, interval time.Duration) {
	t.Helper()
	tok := s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"pub","role":"publisher"}`)["token"].(string)
	pc := loopbackPeer(t)
	track, err := webrtc.NewTrackLocalStaticRTP(rtctest.VP8, "video", "pub")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pc.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	sender := &rtctest.Sender{Track: track, PayloadSize: 202, TimestampStep: 3000}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		pc.Close() // ends the keyframe requests' reader
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		sender.ServeKeyframeRequests(rs)
	}()
	answer, _ := sdpExchange(t, s, "/whip/"+room, tok, pc)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = sender.Run(ctx, 1<<30, interval) // until canceled
	}()
	// A WHEP viewer gets the tracks published when it joins.
	poll.Until(t, "pub's track to be published", func() bool {
		status, v := s.do("GET", "/api/v1/rooms/"+room+"/participants", "")
		return status == http.StatusOK && strings.Contains(fmt.Sprint(v), "kind:video")
	})
}

// sdpExchange posts pc's gathered offer to a WHIP or WHEP path and
// returns the answer and the response's headers.
func sdpExchange(t testing.TB, s *testServer, path, token string, pc *webrtc.PeerConnection) (string, http.Header) {
	t.Helper()
	return postSDP(t, s, path, token, gatheredOffer(t, pc))
}

// gatheredOffer returns pc's offer with every candidate in it, as WHIP
// and WHEP clients send it.
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	offer, err := rtctest.GatheredOffer(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	return offer
}

// postSDP posts an offer to a WHIP or WHEP path, expects 201, and returns
// the answer and the response's headers.
func postSDP(t testing.TB, s *testServer, path, token, offer string) (string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", s.url+path, strings.NewReader(offer))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d %s %v", path, resp.StatusCode, answer, err)
	}
	return string(answer), resp.Header
}

// edgeClientAPI is a pion API on loopback whose ICE uses only the network
// types given.
func edgeClientAPI(t testing.TB, types ...webrtc.NetworkType) *webrtc.API {
	t.Helper()
	api, err := rtctest.ClientAPIOnNetworks(types...)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// watch subscribes to room through s by WHEP with a peer of api made with
// conf, waits for video to flow, and returns the peer's selected candidate
// pair and the headers of the answer.
func watch(t testing.TB, s *testServer, room, tok string, api *webrtc.API, conf webrtc.Configuration) (*webrtc.ICECandidatePair, http.Header) {
	t.Helper()
	v := newViewer(t, s, room, tok, api, conf)
	return v.pair, v.header
}

// viewer is a WHEP subscriber whose video flows.
type viewer struct {
	pair   *webrtc.ICECandidatePair
	header http.Header // of the answer
	r      *rtctest.Receiver
	close  func()
}

// newViewer subscribes to room through s by WHEP with a peer of api made
// with conf and waits for video to flow; the viewer is closed when the
// test ends, or before by close.
func newViewer(t testing.TB, s *testServer, room, tok string, api *webrtc.API, conf webrtc.Configuration) *viewer {
	t.Helper()
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	closeViewer := func() {
		pc.Close()
		wg.Wait()
	}
	t.Cleanup(closeViewer)
	tc, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
	if err != nil {
		t.Fatal(err)
	}
	tracks := make(chan *rtctest.Receiver, 1)
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		r := rtctest.NewReceiver(tr)
		tracks <- r
		wg.Add(1)
		defer wg.Done()
		r.Run()
	})
	answer, header := sdpExchange(t, s, "/whep/"+room, tok, pc)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	var r *rtctest.Receiver
	poll.Until(t, "the viewer's video track", func() bool {
		select {
		case r = <-tracks:
			return true
		default:
			return false
		}
	})
	poll.Until(t, "100 video packets at the viewer", func() bool { return r.Stats().Packets >= 100 })
	checkIntact(t, r)
	pair, err := tc.Receiver().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected candidate pair: %v, %v", pair, err)
	}
	return &viewer{pair: pair, header: header, r: r, close: closeViewer}
}

// viewerToken mints a subscriber's join token for room.
func viewerToken(s *testServer, room string) string {
	s.t.Helper()
	return s.mustDo(200, "POST", "/api/v1/rooms/"+room+"/tokens", `{"identity":"viewer","role":"subscriber"}`)["token"].(string)
}

func checkIntact(t testing.TB, r *rtctest.Receiver) {
	t.Helper()
	if st := r.Stats(); st.Corrupt > 0 || st.OutOfOrder > 0 {
		t.Errorf("%d packets damaged, %d out of order", st.Corrupt, st.OutOfOrder)
	}
}

// A client whose ICE may use TCP only connects through the server's ICE
// TCP port and gets media.
func TestICEOverTCP(t *testing.T) {
	s := startServer(t, testConfig(t.TempDir()))
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	publishVideo(t, s, "r1", 5*time.Millisecond)
	pair, _ := watch(t, s, "r1", viewerToken(s, "r1"), edgeClientAPI(t, webrtc.NetworkTypeTCP4), webrtc.Configuration{})
	if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP || pair.Remote.TCPType != "passive" {
		t.Fatalf("selected pair %s, want TCP to the server's passive candidate", pair)
	}
}

// Without ICE over TCP, the server offers no TCP candidate.
func TestICEOverTCPOff(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.RTCTCPPort = rtcTCPOff
	s := startServer(t, cfg)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tok := viewerToken(s, "r1")
	pc, err := edgeClientAPI(t, webrtc.NetworkTypeUDP4).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	answer, _ := sdpExchange(t, s, "/whep/r1", tok, pc)
	if !strings.Contains(answer, " udp ") || strings.Contains(strings.ToLower(answer), " tcp ") {
		t.Fatalf("answer's candidates, want UDP only:\n%s", answer)
	}
}

// linkICEServers parses the ICE servers of RFC 9725 Link headers.
func linkICEServers(t testing.TB, h http.Header) []webrtc.ICEServer {
	t.Helper()
	var out []webrtc.ICEServer
	for _, v := range h.Values("Link") {
		m := linkRE.FindStringSubmatch(v)
		if m == nil {
			t.Fatalf("Link header %q", v)
		}
		s := webrtc.ICEServer{URLs: []string{m[1]}}
		if m[2] != "" {
			s.Username, s.Credential = m[2], m[3]
		}
		out = append(out, s)
	}
	return out
}

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="ice-server"(?:; username="([^"]*)"; credential="([^"]*)"; credential-type="password")?$`)

// turnServers returns the TURN servers of list.
func turnServers(list []webrtc.ICEServer) []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, s := range list {
		if strings.HasPrefix(s.URLs[0], "turn:") {
			out = append(out, s)
		}
	}
	return out
}

// A client allowed to use relays only connects through the built-in TURN
// server, with the credentials the server handed it, and gets media; the
// configured ICE URLs are handed out beside it.
func TestTURNRelay(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.TURNEnabled = true
	cfg.ICEURLs = stringList{"stun:stun.example.com:3478"}
	s := startServer(t, cfg)
	s.mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	publishVideo(t, s, "r1", 5*time.Millisecond)
	tok := viewerToken(s, "r1")

	// OPTIONS with the viewer's token hands out the servers, with
	// credentials for its identity; without a token, none.
	options := func(token string) http.Header { return whepOptions(t, s, "r1", token) }
	if got := options("")["Link"]; len(got) != 0 {
		t.Fatalf("OPTIONS without a token: Link %q", got)
	}
	servers := linkICEServers(t, options(tok))
	if len(servers) != 2 || !slices.ContainsFunc(servers, func(s webrtc.ICEServer) bool {
		return s.URLs[0] == "stun:stun.example.com:3478" && s.Username == ""
	}) {
		t.Fatalf("ICE servers of OPTIONS: %+v, want the STUN URL and the built-in TURN", servers)
	}
	turns := turnServers(servers)
	if len(turns) != 1 || !strings.HasSuffix(turns[0].Username, ":viewer") || !strings.HasSuffix(turns[0].URLs[0], "?transport=udp") {
		t.Fatalf("TURN servers of OPTIONS: %+v", turns)
	}

	conf := webrtc.Configuration{ICEServers: turns, ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	pair, header := watch(t, s, "r1", tok, edgeClientAPI(t, webrtc.NetworkTypeUDP4), conf)
	if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("selected pair %s, want a relayed one", pair)
	}
	// The 201's servers carry credentials for the new participant.
	created := turnServers(linkICEServers(t, header))
	if len(created) != 1 || !strings.Contains(created[0].Username, ":PA_") {
		t.Fatalf("TURN servers of the 201: %+v", created)
	}

	// A WebSocket joiner gets them in joined.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a bound against a hang
	defer cancel()
	ws, msg := s.join(ctx, tok, nil)
	var joined struct {
		Type        string `json:"type"`
		Participant struct {
			ID string `json:"id"`
		} `json:"participant"`
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"ice_servers"`
	}
	if err := json.Unmarshal(msg, &joined); err != nil || joined.Type != "joined" || len(joined.ICEServers) != 2 {
		t.Fatalf("joined %s: %v", msg, err)
	}
	var turnUser string
	for _, is := range joined.ICEServers {
		if strings.HasPrefix(is.URLs[0], "turn:") {
			turnUser = is.Username
		}
	}
	if !strings.HasSuffix(turnUser, ":"+joined.Participant.ID) {
		t.Fatalf("joined's TURN username %q, want one for %s", turnUser, joined.Participant.ID)
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

// In a cluster, an OPTIONS on a WHEP endpoint is answered by the room's
// owner, whose TURN relays reach its own media port: both nodes hand out
// the owner's TURN server (each node's has a port of its own).
func TestClusterICEServersFromOwner(t *testing.T) {
	nodes := turnCluster(t)
	nodes[0].mustDo(201, "POST", "/api/v1/rooms", `{"id":"r1","name":"r1"}`)
	tok := viewerToken(nodes[0], "r1")
	var urls []string
	for _, s := range nodes {
		servers := turnServers(linkICEServers(t, whepOptions(t, s, "r1", tok)))
		if len(servers) != 1 {
			t.Fatalf("%s: TURN servers %+v", s.url, servers)
		}
		urls = append(urls, servers[0].URLs[0])
	}
	if urls[0] != urls[1] {
		t.Fatalf("TURN URLs through the two nodes differ: %q", urls)
	}
}

// turnCluster starts two cluster nodes, node-a and node-b, on one etcd,
// each with its built-in TURN server on.
func turnCluster(t *testing.T) []*testServer {
	t.Helper()
	endpoint := etcdStart(t)
	secret := strings.Repeat("s", 32)
	var nodes []*testServer
	for _, id := range []string{"node-a", "node-b"} {
		cfg := clusterConfig(t, endpoint, id, secret)
		cfg.TURNEnabled = true
		nodes = append(nodes, startServer(t, cfg))
	}
	return nodes
}
