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

	lease *etcdstore.Lease            // the first; keep follows the next ones
	drop  func(context.Context) error // stops this node's rooms
	stop  context.CancelFunc          // nil until start
	done  chan struct{}
}

// joinCluster opens the store on etcd, checks that the cluster shares this
// node's key pair, takes the node's lease and writes its record. On error
// it has released what it took.
func joinCluster(cfg Config, key auth.Key, httpAddr string, clk clock.Clock, log *slog.Logger) (_ *cluster, err error) {
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
	c := &cluster{store: store, log: log,
		node: etcdstore.NodeInfo{ID: id, AdvertiseURL: adv, StartedAt: clk.Now().UTC()}}
	lease, err := c.register(ctx)
	if err != nil {
		return nil, err
	}
	log.Info("joined the cluster", "node", id, "advertise_url", adv, "etcd", []string(cfg.EtcdEndpoints))
	c.lease = lease
	return c, nil
}

// start keeps the node's lease from now on: when it is lost, drop stops
// every room of this node at once (another node may own them as soon as
// the lease has expired), then the node registers again. It also watches
// for the rooms other nodes lose with their lease, which takeOver starts
// here if this node wins them.
func (c *cluster) start(drop func(context.Context) error, takeOver func(context.Context, actors.RoomID) error) {
	keepCtx, stop := context.WithCancel(context.Background())
	c.stop, c.done, c.drop = stop, make(chan struct{}), drop
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.keep(keepCtx, c.lease)
	}()
	go func() {
		defer wg.Done()
		c.watchLost(keepCtx, takeOver)
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

// register takes the node's lease and writes its record under it.
func (c *cluster) register(ctx context.Context) (*etcdstore.Lease, error) {
	lease, err := c.store.Register(ctx)
	if err != nil {
		return nil, fmt.Errorf("take the node's lease: %w", err)
	}
	if err := c.store.PutNode(ctx, c.node); err != nil {
		return nil, fmt.Errorf("write the node's record: %w", err)
	}
	return lease, nil
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

// nodes lists the cluster's nodes for the API.
func (c *cluster) nodes(ctx context.Context) ([]httpapi.Node, error) {
	list, err := c.store.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Node, len(list))
	for i, n := range list {
		out[i] = httpapi.Node{ID: n.ID, AdvertiseURL: n.AdvertiseURL, StartedAt: n.StartedAt}
	}
	return out, nil
}

// OwnerURL returns the advertise URL of node nodeID, to which httpapi
// forwards the requests for the rooms that node owns.
func (c *cluster) OwnerURL(ctx context.Context, nodeID string) (string, error) {
	list, err := c.store.Nodes(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range list {
		if n.ID == nodeID {
			return n.AdvertiseURL, nil
		}
	}
	return "", fmt.Errorf("node %s holds no lease", nodeID)
}

// owners is the room ownership of etcdstore as the actors use it.
type owners struct{ store *etcdstore.Store }

func (o owners) Claim(ctx context.Context, roomID string) error {
	return asNotOwner(roomID, o.store.Claim(ctx, roomID))
}

func (o owners) Release(ctx context.Context, roomID string) error {
	return asNotOwner(roomID, o.store.Release(ctx, roomID))
}

func asNotOwner(roomID string, err error) error {
	var ne *etcdstore.NotOwnerError
	if errors.As(err, &ne) {
		return &actors.NotOwnerError{RoomID: actors.RoomID(roomID), Owner: ne.Owner}
	}
	return err
}

// singleNode lists the one node of a server that is no cluster's.
func singleNode(cfg Config, httpAddr string, startedAt time.Time) httpapi.NodeLister {
	n := httpapi.Node{StartedAt: startedAt}
	n.ID, _ = cfg.nodeID(httpAddr) // without a host name: no id
	n.AdvertiseURL, _ = cfg.advertiseURL(httpAddr)
	return func(context.Context) ([]httpapi.Node, error) { return []httpapi.Node{n}, nil }
}
