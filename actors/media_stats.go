package actors

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/troupe-media/troupe/persistence/recordpb"
	"github.com/troupe-media/troupe/rtc"
)

// mediaStats lists one participant's live forwarders (what it publishes)
// and down-tracks (what it receives), and the totals of those that ended.
// The participant adds to it and folds a track into the totals when it
// ends, so that a closed track, with its packet cache, is not kept until
// the participant leaves; its room reads it for the session stats and for
// the leave record. The counters are the tracks' own atomics: nothing is
// counted twice on the packet path.
type mediaStats struct {
	mu    sync.Mutex // guards the following
	up    []*rtc.Forwarder
	down  []*rtc.DownTrack
	ended *recordpb.MediaStats // the tracks removed from up and down; nil: none yet
	// peer is the participant's connection, for its bandwidth estimate
	// (receiving); set before the participant starts.
	peer *rtc.Peer
}

func (s *mediaStats) addUp(f *rtc.Forwarder) {
	s.mu.Lock()
	s.up = append(s.up, f)
	s.mu.Unlock()
}

func (s *mediaStats) addDown(dt *rtc.DownTrack) {
	s.mu.Lock()
	s.down = append(s.down, dt)
	s.mu.Unlock()
}

// endUp folds a forwarder that will forward no more into the totals and
// forgets it. Call it once the forwarder is closed: its figures are final.
func (s *mediaStats) endUp(f *rtc.Forwarder) { endTrack(s, &s.up, f, addUp) }

// endDown is endUp for a closed down-track.
func (s *mediaStats) endDown(dt *rtc.DownTrack) { endTrack(s, &s.down, dt, addDown) }

// endTrack takes x out of live and adds its figures to the totals.
func endTrack[T interface {
	comparable
	Stats() rtc.Stats
}](s *mediaStats, live *[]T, x T, add func(*recordpb.MediaStats, rtc.Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(*live, x); i >= 0 {
		*live = slices.Delete(*live, i, i+1)
		add(s.endedTotals(), x.Stats())
	}
}

// snapshot sums every track the participant ever had, ended ones too.
func (s *mediaStats) snapshot() *recordpb.MediaStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &recordpb.MediaStats{}
	if s.ended != nil {
		out = proto.Clone(s.ended).(*recordpb.MediaStats)
	}
	for _, f := range s.up {
		addUp(out, f.Stats())
	}
	for _, dt := range s.down {
		addDown(out, dt.Stats())
	}
	return out
}

func (s *mediaStats) endedTotals() *recordpb.MediaStats {
	if s.ended == nil {
		s.ended = &recordpb.MediaStats{}
	}
	return s.ended
}

func addUp(out *recordpb.MediaStats, st rtc.Stats) {
	out.PacketsIn += st.Packets
	out.BytesIn += st.Bytes
}

func addDown(out *recordpb.MediaStats, st rtc.Stats) {
	out.PacketsOut += st.Packets
	out.BytesOut += st.Bytes
	// Only the drops that cost the subscriber media: waiting for a
	// keyframe or a muted source is not loss.
	out.PacketsDropped += st.Dropped(rtc.DropQueueFull) + st.Dropped(rtc.DropWriteError)
	out.Nacks += st.NACKs
	out.Retransmits += st.Retransmits
	out.NackMisses += st.NACKMisses
	out.KeyframeRequests += st.PLIs + st.FIRs
}

// ParticipantStats is one participant's media in a session.
type ParticipantStats struct {
	ParticipantID ParticipantID
	Identity      string
	// Live: the participant is still connected, and its figures still grow.
	Live  bool
	Media *recordpb.MediaStats
	// Receiving is what a live participant receives now; nil for the
	// others.
	Receiving *Receiving
}

type sessionStatsReq struct{ sessionID SessionID }

type sessionStatsReply struct {
	live []ParticipantStats
	err  error
}

// liveStats answers for the members of the running session.
func (a *roomActor) liveStats(id SessionID) *sessionStatsReply {
	if a.session == nil || SessionID(a.session.rec.Id) != id {
		return &sessionStatsReply{} // ended meanwhile: the records have it all
	}
	out := make([]ParticipantStats, 0, len(a.members))
	for _, m := range a.memberList() {
		out = append(out, ParticipantStats{ParticipantID: m.info.ID, Identity: m.info.Identity, Live: true, Media: m.stats.snapshot(), Receiving: m.stats.receiving()})
	}
	return &sessionStatsReply{live: out}
}

// SessionStats returns the media figures of every participant of a
// session, in join order: from the leave records for those who left, live
// from the room for those still in it.
func (r *Rooms) SessionStats(ctx context.Context, id SessionID) ([]ParticipantStats, error) {
	s, err := r.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	members, err := r.cfg.Store.ListSessionMembers(ctx, string(id))
	if err != nil {
		return nil, fmt.Errorf("session members: %w", err)
	}
	live := map[ParticipantID]ParticipantStats{}
	if s.Status == recordpb.SessionStatus_SESSION_STATUS_IN_PROGRESS {
		res, err := r.request(ctx, RoomID(s.RoomId), &sessionStatsReq{sessionID: id})
		if err != nil {
			return nil, err
		}
		reply, ok := res.(*sessionStatsReply)
		if !ok {
			return nil, fmt.Errorf("actors: unexpected reply %T", res)
		}
		if reply.err != nil {
			return nil, reply.err
		}
		for _, p := range reply.live {
			live[p.ParticipantID] = p
		}
	}
	out := make([]ParticipantStats, 0, len(members))
	for _, m := range members {
		if p, ok := live[ParticipantID(m.ParticipantId)]; ok && m.LeftAt == nil {
			out = append(out, p)
			continue
		}
		media := m.Stats
		if media == nil {
			media = &recordpb.MediaStats{}
		}
		out = append(out, ParticipantStats{ParticipantID: ParticipantID(m.ParticipantId), Identity: m.Identity, Media: media})
	}
	return out, nil
}
