package naive

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"

	"github.com/troupe-media/troupe/rtc/rtctest"
)

// Config configures a Server. The zero value serves on loopback.
type Config struct {
	// AllInterfaces offers ICE candidates on every interface; by default
	// only IPv4 loopback, like the benchmark's clients.
	AllInterfaces bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server is the naive forwarder's HTTP handler and its rooms.
type Server struct {
	api *webrtc.API
	log *slog.Logger
	mux *http.ServeMux

	mu     sync.Mutex // guards the following
	rooms  map[string]*room
	peers  map[*peer]struct{}
	closed bool
	wg     sync.WaitGroup // peers' goroutines
}

// New returns a server; serve it with net/http.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var se webrtc.SettingEngine
	if !cfg.AllInterfaces {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	api, err := rtctest.DefaultAPI(se)
	if err != nil {
		return nil, err
	}
	s := &Server{
		api:   api,
		log:   cfg.Logger,
		mux:   http.NewServeMux(),
		rooms: map[string]*room{},
		peers: map[*peer]struct{}{},
	}
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	s.mux.HandleFunc("POST /api/v1/rooms", s.createRoom)
	s.mux.HandleFunc("POST /api/v1/rooms/{id}/tokens", s.createToken)
	s.mux.HandleFunc("GET /rtc", s.signal)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// shutdownTimeout bounds how long ListenAndServe waits for requests in
// flight once its context ends.
const shutdownTimeout = 30 * time.Second

// ListenAndServe serves a new Server on addr until ctx ends, then stops
// accepting, waits for the requests in flight and closes every peer: the
// whole life of the baseline's process.
func ListenAndServe(ctx context.Context, addr string, cfg Config) error {
	s, err := New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("naive: listen: %w", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
		return errors.Join(fmt.Errorf("naive: serve: %w", err), s.Close())
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(stopCtx)
	<-served // http.ErrServerClosed
	return errors.Join(err, s.Close())
}

// Close ends every peer and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	peers := make([]*peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	for _, p := range peers {
		p.ws.CloseNow()
	}
	s.wg.Wait()
	return nil
}

func (s *Server) createRoom(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.ID == "" {
		req.ID = "room_" + randomID()
	}
	s.mu.Lock()
	if _, ok := s.rooms[req.ID]; !ok {
		s.rooms[req.ID] = &room{}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"id": req.ID, "name": req.Name, "status": "active"})
}

// A token is just the room and identity: the baseline checks nothing.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Identity string `json:"identity"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tok := base64.RawURLEncoding.EncodeToString([]byte(r.PathValue("id") + "\x00" + req.Identity))
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires_at": time.Now().Add(24 * time.Hour).UTC()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// room is the peers of one room and the tracks they publish.
type room struct {
	mu     sync.Mutex // guards the following
	peers  []*peer
	tracks []*forward
}

// forward is one published track: its reader writes every packet to the
// subscribers' tracks.
type forward struct {
	from   *peer
	remote *webrtc.TrackRemote

	mu   sync.RWMutex // guards subs
	subs map[*peer]*webrtc.TrackLocalStaticRTP
}

func (f *forward) run() {
	for {
		pkt, _, err := f.remote.ReadRTP()
		if err != nil {
			return
		}
		f.mu.RLock()
		for _, t := range f.subs {
			_ = t.WriteRTP(pkt)
		}
		f.mu.RUnlock()
	}
}

// peer is one client: its socket and peer connection.
type peer struct {
	s    *Server
	room *room
	id   string
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection

	mu        sync.Mutex // guards the negotiation
	needOffer bool
	// pending is the offer sent and not yet answered. It is applied
	// locally only with its answer, so that on glare (the client offers
	// meanwhile) dropping it is the whole rollback.
	pending *webrtc.SessionDescription
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	raw, err := base64.RawURLEncoding.DecodeString(r.URL.Query().Get("token"))
	roomID, identity, ok := strings.Cut(string(raw), "\x00")
	if err != nil || !ok {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	rm := s.rooms[roomID]
	closed := s.closed
	s.mu.Unlock()
	if rm == nil || closed {
		http.Error(w, "no such room", http.StatusNotFound)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(1 << 20)
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		ws.Close(websocket.StatusInternalError, "peer connection")
		return
	}
	p := &peer{s: s, room: rm, id: "PA_" + identity + "_" + randomID(), ws: ws, pc: pc}
	s.mu.Lock()
	s.peers[p] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	p.serve(r.Context())
	s.mu.Lock()
	delete(s.peers, p)
	s.mu.Unlock()
}

func (p *peer) send(v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.ws.Write(ctx, websocket.MessageText, b)
}

func (p *peer) serve(ctx context.Context) {
	defer p.leave()
	p.send(map[string]any{
		"type":         "joined",
		"participant":  map[string]any{"id": p.id, "tracks": []any{}},
		"room":         map[string]any{},
		"participants": []any{},
		"ice_servers":  []any{},
	})
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		var v any
		if c != nil {
			v = c.ToJSON()
		}
		// Not under mu: pion calls this from inside SetLocalDescription.
		// The client keeps candidates that come before a description.
		p.send(map[string]any{"type": "candidate", "candidate": v})
	})
	p.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { p.publish(tr) })

	// Join: receive every track already published in the room.
	rm := p.room
	rm.mu.Lock()
	rm.peers = append(rm.peers, p)
	tracks := append([]*forward(nil), rm.tracks...)
	rm.mu.Unlock()
	for _, f := range tracks {
		p.subscribe(f)
	}
	p.negotiate()

	for {
		_, b, err := p.ws.Read(ctx)
		if err != nil {
			return
		}
		var m struct {
			Type      string                   `json:"type"`
			SDP       string                   `json:"sdp"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			continue
		}
		if m.Type == "leave" {
			return
		}
		if err := p.handle(m.Type, m.SDP, m.Candidate); err != nil {
			p.s.log.Warn("naive signaling", "peer", p.id, "type", m.Type, "err", err)
		}
	}
}

func (p *peer) handle(typ, sdp string, cand *webrtc.ICECandidateInit) error {
	switch typ {
	case "offer":
		p.mu.Lock()
		// The server is the polite peer: drop its own offer, answer, and
		// offer again afterwards.
		if p.pending != nil {
			p.pending, p.needOffer = nil, true
		}
		err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp})
		var answer webrtc.SessionDescription
		if err == nil {
			answer, err = p.pc.CreateAnswer(nil)
		}
		if err == nil {
			err = p.pc.SetLocalDescription(answer)
		}
		if err == nil {
			p.send(map[string]any{"type": "answer", "sdp": answer.SDP})
		}
		p.mu.Unlock()
		p.negotiate()
		return err
	case "answer":
		p.mu.Lock()
		offer := p.pending
		p.pending = nil
		var err error
		if offer == nil {
			err = errors.New("an answer with no offer out")
		} else if err = p.pc.SetLocalDescription(*offer); err != nil {
			p.needOffer = true // stale: offer anew
		} else {
			err = p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp})
		}
		p.mu.Unlock()
		p.negotiate()
		return err
	case "candidate":
		if cand == nil || cand.Candidate == "" {
			return nil
		}
		return p.pc.AddICECandidate(*cand)
	}
	return nil
}

// negotiate offers the tracks added since the last offer, once the
// connection is stable.
func (p *peer) negotiate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.needOffer || p.pending != nil || p.pc.SignalingState() != webrtc.SignalingStateStable {
		return
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.s.log.Warn("naive offer", "peer", p.id, "err", err)
		return
	}
	p.needOffer, p.pending = false, &offer
	p.send(map[string]any{"type": "offer", "sdp": offer.SDP})
}

// publish starts forwarding a track the peer sends, to everyone else in
// the room.
func (p *peer) publish(tr *webrtc.TrackRemote) {
	f := &forward{from: p, remote: tr, subs: map[*peer]*webrtc.TrackLocalStaticRTP{}}
	rm := p.room
	rm.mu.Lock()
	rm.tracks = append(rm.tracks, f)
	others := make([]*peer, 0, len(rm.peers))
	for _, q := range rm.peers {
		if q != p {
			others = append(others, q)
		}
	}
	rm.mu.Unlock()
	for _, q := range others {
		q.subscribe(f)
		q.negotiate()
	}
	f.run()
}

// subscribe adds a local track fed by f to p's connection.
func (p *peer) subscribe(f *forward) {
	if f.from == p {
		return
	}
	local, err := webrtc.NewTrackLocalStaticRTP(f.remote.Codec().RTPCodecCapability, f.remote.ID(), f.from.id)
	if err != nil {
		p.s.log.Warn("naive track", "err", err)
		return
	}
	p.mu.Lock()
	sender, err := p.pc.AddTrack(local)
	if err == nil {
		p.needOffer = true
	}
	p.mu.Unlock()
	if err != nil {
		return
	}
	// As pion's examples do: read the sender's RTCP so the interceptors
	// see it (NACKs are answered by pion's responder).
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	f.mu.Lock()
	f.subs[p] = local
	f.mu.Unlock()
}

// leave removes the peer from its room and from every track it receives.
func (p *peer) leave() {
	rm := p.room
	rm.mu.Lock()
	for i, q := range rm.peers {
		if q == p {
			rm.peers = append(rm.peers[:i], rm.peers[i+1:]...)
			break
		}
	}
	kept := rm.tracks[:0]
	var all []*forward
	for _, f := range rm.tracks {
		all = append(all, f)
		if f.from != p {
			kept = append(kept, f)
		}
	}
	rm.tracks = kept
	rm.mu.Unlock()
	for _, f := range all {
		f.mu.Lock()
		delete(f.subs, p)
		f.mu.Unlock()
	}
	p.ws.Close(websocket.StatusNormalClosure, "left")
	if err := p.pc.Close(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		p.s.log.Debug("naive close", "err", fmt.Sprint(err))
	}
}
