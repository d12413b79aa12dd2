package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/troupe-media/troupe/actors"
	"github.com/troupe-media/troupe/httpapi"
	"github.com/troupe-media/troupe/httpapi/auth"
	"github.com/troupe-media/troupe/internal/clock"
	"github.com/troupe-media/troupe/persistence/etcdstore"
)

const (
	// clusterJoinTimeout bounds the start of a cluster node: connecting to
	// etcd, checking the key pair, taking a lease.
	clusterJoinTimeout = 30 * time.Second
	// reregisterPause is the wait between two attempts to take a lease
	// again after the node lost its own.
	reregisterPause = time.Second
	// dropTimeout bounds stopping the rooms after the lease was lost.
	dropTimeout = 10 * time.Second
	// fingerprintText is what the API secret signs to make the key pair's
	// fingerprint: the nodes compare it, and the secret never leaves them.
	fingerprintText = "troupe cluster key fingerprint v1"
)

// keyFingerprint identifies a key pair without revealing its secret: the
// key id and an HMAC-SHA256 of a fixed text with the secret.
func keyFingerprint(k auth.Key) string {
	m := hmac.New(sha256.New, []byte(k.Secret))
	m.Write([]byte(fingerprintText))
	return k.ID + ":" + hex.EncodeToString(m.Sum(nil))
}

// cluster is this node's membership of a cluster: the etcd store of record,
// the node's lease and its record, kept while the server runs.
type cluster struct {
	store *etcdstore.Store
	node  etcdstore.NodeInfo
	log   *slog.Logger
	clk   clock.Clock

	lease *etcdstore.Lease // the first; keep follows the next ones
	// held is the lease last taken: while it is lost the node refuses
	// every write, so it is not ready.
	held atomic.Pointer[etcdstore.Lease]
	drop func(context.Context) error // stops this node's rooms
	stop context.CancelFunc          // nil until start
	// stopLost ends the watch of lost rooms alone (stopTakingOver); nil
	// until start.
	stopLost context.CancelFunc
	done     chan struct{}

	owners etcdstore.OwnerView // who owns each room, as the watch last said: a hint for forwarding
	load   *nodeLoad           // what this node runs, published in its record
	// draining is published in the record once the node drains.
	draining atomic.Bool
	placed   placements
	metrics  *clusterMetrics

	mu        sync.Mutex         // guards published, and is held while the record is written
	published etcdstore.NodeLoad // the load in the record last written

	viewMu sync.Mutex           // guards the following
	view   []etcdstore.NodeInfo // the node records, as FollowNodes last gave them
	live   bool                 // view follows etcd; false: read the records
}

// joinCluster opens the store on etcd, checks that the cluster shares this
// node's key pair, takes the node's lease and writes its record. On error
// it has released what it took.
func joinCluster(cfg Config, key auth.Key, httpAddr string, load *nodeLoad, clk clock.Clock, log *slog.Logger) (_ *cluster, err error) {
	id, err := cfg.nodeID(httpAddr)
	if err != nil {
		return nil, err
	}
	adv, err := cfg.advertiseURL(httpAddr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterJoinTimeout)
	defer cancel()
	store, err := etcdstore.New(ctx, etcdstore.Config{
		Endpoints: cfg.EtcdEndpoints,
		NodeID:    id,
		LeaseTTL:  cfg.ClusterLeaseTTL,
		Clock:     clk,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("open store on etcd %v: %w", []string(cfg.EtcdEndpoints), err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, store.Close())
		}
	}()
	fp := keyFingerprint(key)
	got, err := store.SetKeyFingerprint(ctx, fp)
	if err != nil {
		return nil, fmt.Errorf("check the cluster's API key: %w", err)
	}
	if got != fp {
		return nil, fmt.Errorf("%w: the cluster on etcd %v was started with another API key pair than --api-key %s and its --api-secret; every node must share them",
			ErrKeyMismatch, []string(cfg.EtcdEndpoints), key.ID)
	}
	c := &cluster{store: store, log: log.With("component", "cluster"), clk: clk, load: load,
		node: etcdstore.NodeInfo{ID: id, AdvertiseURL: adv, StartedAt: clk.Now().UTC()}}
	c.metrics = newClusterMetrics(c)
	lease, err := c.register(ctx)
	if err != nil {
		return nil, err
	}
	c.log.Info("joined the cluster", "node", id, "advertise_url", adv, "etcd", []string(cfg.EtcdEndpoints))
	c.lease = lease
	return c, nil
}

// start keeps the node's lease from now on: when it is lost, drop stops
// every room of this node at once (another node may own them as soon as
// the lease has expired), then the node registers again. It publishes the
// node's load meanwhile (publishLoad), follows the node records, which
// placement, forwarding and the nodes list then read from memory, and the
// room owners, a hint for forwarding (ownerview.go), and
// watches for the rooms other nodes lose with their lease, which takeOver
// starts here if this node wins them.
func (c *cluster) start(drop func(context.Context) error, takeOver func(context.Context, actors.RoomID) error) {
	keepCtx, stop := context.WithCancel(context.Background())
	c.stop, c.done, c.drop = stop, make(chan struct{}), drop
	lostCtx, stopLost := context.WithCancel(keepCtx)
	c.stopLost = stopLost
	var wg sync.WaitGroup
	wg.Add(5)
	go func() {
		defer wg.Done()
		c.keep(keepCtx, c.lease)
	}()
	go func() {
		defer wg.Done()
		c.publishLoad(keepCtx)
	}()
	go func() {
		defer wg.Done()
		c.store.FollowNodes(keepCtx, c.setView)
	}()
	go func() {
		defer wg.Done()
		c.watchLost(lostCtx, takeOver)
	}()
	go func() {
		defer wg.Done()
		c.followOwners(keepCtx)
	}()
	go func() {
		wg.Wait()
		close(c.done)
	}()
}

// watchLost takes over the rooms lost nodes leave with a session in
// progress, until ctx ends.
func (c *cluster) watchLost(ctx context.Context, takeOver func(context.Context, actors.RoomID) error) {
	err := c.store.WatchLostRooms(ctx, etcdstore.LostRoomsConfig{}, func(ctx context.Context, roomID string) error {
		return takeOver(ctx, actors.RoomID(roomID))
	})
	if ctx.Err() == nil {
		c.log.Error("stopped watching for the rooms of lost nodes", "node", c.node.ID, "err", err)
	}
}

// stopTakingOver ends the watch of lost rooms, once the node drains or
// stops: a room taken over now would refuse its members' joins (draining)
// or stop at once, and its claim would keep it from the nodes that stay
// until this node's lease goes. A takeover under way runs to its end.
func (c *cluster) stopTakingOver() {
	if c.stopLost != nil {
		c.stopLost()
	}
}

// register takes the node's lease and writes its record under it.
func (c *cluster) register(ctx context.Context) (*etcdstore.Lease, error) {
	lease, err := c.store.Register(ctx)
	if err != nil {
		return nil, fmt.Errorf("take the node's lease: %w", err)
	}
	if err := c.putRecord(ctx); err != nil {
		return nil, fmt.Errorf("write the node's record: %w", err)
	}
	c.held.Store(lease)
	return lease, nil
}

// errNoLease is what /readyz reports while the node holds no lease.
var errNoLease = &httpapi.NotReadyError{Reason: "no cluster lease"}

// ready reports errNoLease from the moment the node's lease is lost until
// it has registered again.
func (c *cluster) ready() error {
	if l := c.held.Load(); l == nil || l.Err() != nil {
		return errNoLease
	}
	return nil
}

// keep registers the node again whenever its lease is lost, until ctx ends.
func (c *cluster) keep(ctx context.Context, lease *etcdstore.Lease) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-lease.Done():
		}
		c.log.Warn("lost the cluster lease: stopping this node's rooms", "node", c.node.ID, "err", lease.Err())
		dropCtx, cancel := context.WithTimeout(ctx, dropTimeout)
		if err := c.drop(dropCtx); err != nil {
			c.log.Error("stop the rooms after losing the lease", "node", c.node.ID, "err", err)
		}
		cancel()
		for {
			if ctx.Err() != nil {
				return
			}
			l, err := c.register(ctx)
			if err == nil {
				c.log.Info("registered again after losing the lease", "node", c.node.ID)
				lease = l
				break
			}
			c.log.Warn("register again", "node", c.node.ID, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(reregisterPause):
			}
		}
	}
}

// close stops keeping the lease; the store, closed after the rooms, revokes it.
func (c *cluster) close() {
	if c.stop == nil {
		return // never started
	}
	c.stop()
	<-c.done
}

// setView takes the node records FollowNodes gives.
func (c *cluster) setView(nodes []etcdstore.NodeInfo, ok bool) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	c.view, c.live = nodes, ok
}

// records returns the node records: from memory while they are followed,
// else read from etcd.
func (c *cluster) records(ctx context.Context) ([]etcdstore.NodeInfo, error) {
	c.viewMu.Lock()
	view, live := c.view, c.live
	c.viewMu.Unlock()
	if live {
		return view, nil
	}
	return c.store.Nodes(ctx)
}

// nodes lists the cluster's nodes for the API, with the loads of their
// records, as placement sees them: every node answers the same once a
// change has reached it (a watch, a few milliseconds).
func (c *cluster) nodes(ctx context.Context) ([]httpapi.Node, error) {
	list, err := c.records(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Node, len(list))
	for i, n := range list {
		out[i] = apiNode(n, n.ID == c.node.ID)
	}
	return out, nil
}

// apiNode is a node record as the API lists it.
func apiNode(n etcdstore.NodeInfo, self bool) httpapi.Node {
	return httpapi.Node{ID: n.ID, AdvertiseURL: n.AdvertiseURL, StartedAt: n.StartedAt, Self: self,
		Rooms: n.Load.Rooms, Participants: n.Load.Participants, Tracks: n.Load.Tracks, Load: loadScore(n.Load),
		Draining: n.Draining}
}

// OwnerURL returns the advertise URL of node nodeID, to which httpapi
// forwards the requests for the rooms that node owns.
// A node that joined a moment ago may not have reached the records
// followed yet: those of etcd are read then.
func (c *cluster) OwnerURL(ctx context.Context, nodeID string) (string, error) {
	list, err := c.records(ctx)
	if err != nil {
		return "", err
	}
	if u, ok := advertiseURLOf(list, nodeID); ok {
		return u, nil
	}
	if list, err = c.store.Nodes(ctx); err != nil {
		return "", err
	}
	if u, ok := advertiseURLOf(list, nodeID); ok {
		return u, nil
	}
	return "", fmt.Errorf("node %s holds no lease", nodeID)
}

func advertiseURLOf(nodes []etcdstore.NodeInfo, nodeID string) (string, bool) {
	for _, n := range nodes {
		if n.ID == nodeID {
			return n.AdvertiseURL, true
		}
	}
	return "", false
}

func asNotOwner(roomID string, err error) error {
	var ne *etcdstore.NotOwnerError
	if errors.As(err, &ne) {
		return &actors.NotOwnerError{RoomID: actors.RoomID(roomID), Owner: ne.Owner}
	}
	return err
}

// singleNode lists the one node of a server that is no cluster's, with
// what it runs now.
func singleNode(cfg Config, httpAddr string, startedAt time.Time, load *nodeLoad) httpapi.NodeLister {
	n := etcdstore.NodeInfo{StartedAt: startedAt}
	n.ID, _ = cfg.nodeID(httpAddr) // without a host name: no id
	n.AdvertiseURL, _ = cfg.advertiseURL(httpAddr)
	return func(context.Context) ([]httpapi.Node, error) {
		n := n
		n.Load = load.read()
		n.Draining = load.rooms != nil && load.rooms.Draining()
		return []httpapi.Node{apiNode(n, true)}, nil
	}
}

// RoomOwners returns the owners of the rooms that have one, for the node_id
// of listed rooms.
func (c *cluster) RoomOwners(ctx context.Context, roomIDs []string) (map[string]string, error) {
	return c.store.RoomOwners(ctx, roomIDs)
}
