package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/persistence"
	"github.com/troupe-media/troupe/persistence/etcdstore"
	"github.com/troupe-media/troupe/rtc"
)

// Load and placement in a cluster.
//
// Each node publishes what it runs in its node record (etcdstore.NodeLoad:
// room actors, participants, forwarded tracks), checked every loadInterval
// and written only when it changed, so a node writes at most once a second
// and an idle one not at all. A node's load is one number, loadScore: rooms
// + participants + forwarded tracks. A room with nobody in it costs a
// little memory; each participant a peer connection; each forwarded track
// the packets sent to one subscriber, which is where the CPU goes.
//
// A room no node owns goes, on its first activation, to the node with the
// least load by the records, which each node follows in memory (a watch).
// The node that received the call chooses; on a tie it keeps the room,
// then the lowest node id wins. If it chose another node, it makes that
// node the owner (etcdstore.Place, under the chosen node's lease) and the
// call is forwarded there, where the room is found already owned: a
// forwarded call is never placed again. Records are up to a second old, so
// a node counts the rooms it placed on each node since that node's record
// last changed, for two seconds: a burst of new rooms spreads instead of
// piling onto the node that was idle a second ago.

// loadInterval is how often a node checks its load, and so the most often
// it rewrites its record.
const loadInterval = time.Second

// loadScore is the one number that placement compares.
func loadScore(l etcdstore.NodeLoad) int { return l.Rooms + l.Participants + l.Tracks }

// nodeLoad reads what this node runs. Its fields are set once the rooms
// and the media have started, before anything reads them.
type nodeLoad struct {
	rooms *actors.Rooms
	media *rtc.Metrics
}

func (n *nodeLoad) read() etcdstore.NodeLoad {
	if n == nil || n.rooms == nil {
		return etcdstore.NodeLoad{}
	}
	return etcdstore.NodeLoad{Rooms: n.rooms.Live(), Participants: n.rooms.LiveParticipants(), Tracks: n.media.DownTracks()}
}

// pendingFor is how long a room placed on a node counts beside the node's
// record: by then the record has counted it, if it still runs (a room that
// came and went within one check never shows in it).
const pendingFor = 2 * loadInterval

// placements are the rooms this node placed on each node lately, since
// that node's record last changed: what the records may not count yet.
type placements struct {
	mu     sync.Mutex // guards byNode
	byNode map[string]placed
}

type placed struct {
	revision int64       // of the node's record when counting began
	at       []time.Time // when each room was placed, oldest first
}

// pendingLocked is what node n's record may not count yet, at now.
func (p *placements) pendingLocked(n etcdstore.NodeInfo, now time.Time) int {
	got, ok := p.byNode[n.ID]
	if !ok || got.revision != n.Revision {
		return 0
	}
	recent := 0
	for _, at := range got.at {
		if now.Sub(at) < pendingFor {
			recent++
		}
	}
	return recent
}

// choose returns the least loaded of nodes at now that is not draining,
// self winning a tie, then the lowest id. ok is false if there is none.
func (p *placements) choose(self string, nodes []etcdstore.NodeInfo, now time.Time) (best etcdstore.NodeInfo, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	bestScore := 0
	before := func(n etcdstore.NodeInfo, score int) bool {
		switch {
		case score != bestScore:
			return score < bestScore
		case (n.ID == self) != (best.ID == self):
			return n.ID == self
		}
		return n.ID < best.ID
	}
	for _, n := range nodes {
		if n.Draining {
			continue // stopping: its rooms would have to move again at once
		}
		score := loadScore(n.Load) + p.pendingLocked(n, now)
		if !ok || before(n, score) {
			best, bestScore, ok = n, score, true
		}
	}
	return best, ok
}

// note counts a room placed on n at now.
func (p *placements) note(n etcdstore.NodeInfo, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byNode == nil {
		p.byNode = make(map[string]placed)
	}
	for id, old := range p.byNode {
		// Nodes that come and go leave nothing behind.
		if last := len(old.at) - 1; last < 0 || now.Sub(old.at[last]) >= pendingFor {
			delete(p.byNode, id)
		}
	}
	got := p.byNode[n.ID]
	if got.revision != n.Revision {
		got = placed{revision: n.Revision}
	}
	// Drop what no longer counts, so that the list stays short.
	for len(got.at) > 0 && now.Sub(got.at[0]) >= pendingFor {
		got.at = got.at[1:]
	}
	got.at = append(got.at, now)
	p.byNode[n.ID] = got
}

// owners is the room ownership of etcdstore as the actors use it, with
// placement: a room no node owns goes to the least loaded node.
type owners struct{ c *cluster }

var _ actors.Creator = owners{}

// Claim places roomID if no node owns it (claims it here for a forwarded
// request): nil if this node owns it now, a *actors.NotOwnerError naming
// the owner otherwise, to which the call is forwarded.
func (o owners) Claim(ctx context.Context, roomID string) error {
	c := o.c
	self := c.node.ID
	if actors.IsForwarded(ctx) {
		// Sent here by a node that heard this one owns the room (or a
		// takeover won here): served here if no node owns it, never
		// placed again.
		return asNotOwner(roomID, c.store.Claim(ctx, roomID))
	}
	nodes, err := c.records(ctx)
	if err != nil {
		c.log.Warn("read the node records to place a room; claiming it here", "room", roomID, "err", err)
		return asNotOwner(roomID, c.store.Claim(ctx, roomID))
	}
	if c.draining.Load() {
		// The record saying so may not have come back through the watch.
		nodes = othersThan(self, nodes)
	}
	to, ok := c.placed.choose(self, nodes, c.clk.Now())
	if !ok {
		// No record, not even this node's: it holds no lease now, which
		// Claim says.
		return asNotOwner(roomID, c.store.Claim(ctx, roomID))
	}
	owner, err := c.store.Place(ctx, roomID, to)
	if errors.Is(err, etcdstore.ErrNodeGone) {
		// A stale record: the node went since (the watch will say so).
		// This node keeps the room.
		c.log.Info("placing a room on a node that is gone; claiming it here", "room", roomID, "node", to.ID)
		to = etcdstore.NodeInfo{ID: self}
		owner, err = c.store.Place(ctx, roomID, to)
	}
	if err != nil {
		return asNotOwner(roomID, err)
	}
	if owner == to.ID {
		c.placed.note(to, c.clk.Now())
		c.metrics.placements.WithLabelValues(self, placedWhere(owner == self)).Inc()
	}
	if owner == self {
		return nil
	}
	c.log.Debug("room placed on another node", "room", roomID, "owner", owner)
	return &actors.NotOwnerError{RoomID: actors.RoomID(roomID), Owner: owner}
}

// PlaceNew chooses the node a new room goes to, as Claim does, from the
// node records in memory: "" keeps it here, as when the records are not
// followed (the watch is down), since placement must not wait on etcd.
// Nothing is written: the create is forwarded to the node chosen, whose
// creation claims the room (ClaimCreate).
func (o owners) PlaceNew(roomID string) string {
	c := o.c
	self := c.node.ID
	c.viewMu.Lock()
	nodes, live := c.view, c.live
	c.viewMu.Unlock()
	if !live {
		return ""
	}
	if c.draining.Load() {
		nodes = othersThan(self, nodes)
	}
	now := c.clk.Now()
	to, ok := c.placed.choose(self, nodes, now)
	if !ok {
		return ""
	}
	c.placed.note(to, now)
	c.metrics.placements.WithLabelValues(self, placedWhere(to.ID == self)).Inc()
	if to.ID == self {
		return ""
	}
	c.log.Debug("new room placed on another node", "room", roomID, "node", to.ID)
	return to.ID
}

// ClaimCreate creates a room and claims it here in one transaction
// (etcdstore.ClaimCreate).
func (o owners) ClaimCreate(ctx context.Context, roomID string, w persistence.Writes) error {
	return asNotOwner(roomID, o.c.store.ClaimCreate(ctx, w))
}

// othersThan returns nodes without node id.
func othersThan(id string, nodes []etcdstore.NodeInfo) []etcdstore.NodeInfo {
	out := make([]etcdstore.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		if n.ID != id {
			out = append(out, n)
		}
	}
	return out
}

func placedWhere(here bool) string {
	if here {
		return "here"
	}
	return "elsewhere"
}

func (o owners) Release(ctx context.Context, roomID string) error {
	return asNotOwner(roomID, o.c.store.Release(ctx, roomID))
}

// publishLoad writes this node's load into its record whenever it changed,
// checking every loadInterval, until ctx ends. A write that fails (the
// lease was just lost) is tried again at the next check; keep writes the
// record anew under the next lease.
func (c *cluster) publishLoad(ctx context.Context) {
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		same := c.load.read() == c.published
		c.mu.Unlock()
		if same {
			continue
		}
		if err := c.putRecord(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug("publish the node's load", "node", c.node.ID, "err", err)
		}
	}
}

// putRecord writes this node's record with its load now. The writes of
// publishLoad and of keep (registering again) take turns, so the last
// written is the newest.
func (c *cluster) putRecord(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := c.node
	info.Load = c.load.read()
	info.Draining = c.draining.Load()
	if err := c.store.PutNode(ctx, info); err != nil {
		return err
	}
	c.published = info.Load
	return nil
}

// clusterMetrics are a node's own figures, labelled with its id so that an
// operator can sum them over the cluster or tell the nodes apart.
type clusterMetrics struct {
	c                                       *cluster
	info, rooms, participants, score, nodes *prometheus.Desc
	placements                              *prometheus.CounterVec
}

func newClusterMetrics(c *cluster) *clusterMetrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("troupe_cluster_node_"+name, help, append([]string{"node"}, labels...), nil)
	}
	m := &clusterMetrics{
		c:            c,
		info:         d("info", "1 for this cluster node, labelled with its id and advertise URL.", "advertise_url"),
		rooms:        d("rooms", "Room actors running on this node."),
		participants: d("participants", "Participants connected to this node."),
		score:        d("load", "This node's load as placement compares it: rooms + participants + forwarded tracks."),
		nodes: prometheus.NewDesc("troupe_cluster_nodes", "Nodes holding a lease, as this node follows their records for placement and forwarding.",
			[]string{"node"}, nil),
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "troupe_cluster_placements_total",
			Help: "Rooms no node owned that this node placed, on itself (here) or on another node (elsewhere).",
		}, []string{"node", "placed"}),
	}
	for _, where := range []string{"here", "elsewhere"} {
		m.placements.WithLabelValues(c.node.ID, where) // listed from the start, at 0
	}
	return m
}

func (m *clusterMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.info, m.rooms, m.participants, m.score, m.nodes} {
		ch <- d
	}
	m.placements.Describe(ch)
}

func (m *clusterMetrics) Collect(ch chan<- prometheus.Metric) {
	id, l := m.c.node.ID, m.c.load.read()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), append([]string{id}, labels...)...)
	}
	gauge(m.info, 1, m.c.node.AdvertiseURL)
	gauge(m.rooms, l.Rooms)
	gauge(m.participants, l.Participants)
	gauge(m.score, loadScore(l))
	m.c.viewMu.Lock()
	seen := len(m.c.view)
	m.c.viewMu.Unlock()
	gauge(m.nodes, seen)
	m.placements.Collect(ch)
}
