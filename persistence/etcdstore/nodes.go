package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/troupe-media/troupe/persistence"
)

// NodeInfo is a cluster node's record: who it is, where the other nodes
// reach it and what it runs. It lives under the node's lease, so the nodes
// listed are those holding one.
type NodeInfo struct {
	ID           string    `json:"id"`
	AdvertiseURL string    `json:"advertise_url"`
	StartedAt    time.Time `json:"started_at"`
	// Load is what the node ran when it last wrote its record.
	Load NodeLoad `json:"load"`
	// Lease is the etcd lease the record lives under; PutNode sets it.
	// Place claims a room for the node under it.
	Lease int64 `json:"lease,omitempty"`
	// Revision is the etcd revision of the record's last write, set by
	// Nodes and not stored: it tells a reader that the record changed.
	Revision int64 `json:"-"`
}

// NodeLoad is what a node runs, as it publishes it in its record. A record
// written before loads were published reads as zero.
type NodeLoad struct {
	// Rooms is the number of room actors running on the node.
	Rooms int `json:"rooms"`
	// Participants is the number of participants connected to them.
	Participants int `json:"participants"`
	// Tracks is the number of tracks forwarded: one per subscriber per
	// published track.
	Tracks int `json:"tracks"`
}

// PutNode writes this node's record under its live lease (Register first);
// it goes away with the lease, and is to be written again under the next
// one. info.ID is the Store's node id and info.Lease its lease, whatever
// they hold.
func (s *Store) PutNode(ctx context.Context, info NodeInfo) error {
	if s.node == "" {
		return ErrNotNode
	}
	if err := s.enter(ctx); err != nil {
		return err
	}
	defer s.leave()
	l, err := s.liveLease()
	if err != nil {
		return err
	}
	info.ID, info.Lease, info.Revision = s.node, int64(l.id), 0
	v, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("etcdstore: encode node record: %w", err)
	}
	if _, err := s.cli.Put(ctx, s.k.node(s.node), string(v), clientv3.WithLease(l.id)); err != nil {
		if errors.Is(err, errLeaseNotFound) {
			return ErrNoLease
		}
		return fmt.Errorf("etcdstore: write node record: %w", err)
	}
	return nil
}

// Nodes returns the records of the nodes that hold a lease, by id.
func (s *Store) Nodes(ctx context.Context) ([]NodeInfo, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := s.k.nodes()
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcdstore: list nodes: %w", err)
	}
	out := make([]NodeInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n NodeInfo
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, &persistence.CorruptError{Kind: persistence.KindMeta, Key: string(kv.Key), Err: err}
		}
		n.ID = strings.TrimPrefix(string(kv.Key), prefix)
		n.Revision = kv.ModRevision
		out = append(out, n)
	}
	return out, nil
}

// SetKeyFingerprint stores fp as the cluster's API key fingerprint unless
// one is stored already, and returns the one stored: fp, or the first
// node's. Nodes that share a key pair store the same fingerprint; one that
// gets back another than its own was started with another key pair.
func (s *Store) SetKeyFingerprint(ctx context.Context, fp string) (string, error) {
	if fp == "" {
		return "", fmt.Errorf("%w: empty key fingerprint", persistence.ErrInvalid)
	}
	if err := s.enter(ctx); err != nil {
		return "", err
	}
	defer s.leave()
	key := s.k.keyprint()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fp)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", fmt.Errorf("etcdstore: set key fingerprint: %w", err)
	}
	if resp.Succeeded {
		return fp, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return "", fmt.Errorf("etcdstore: key fingerprint vanished while read")
	}
	return string(kvs[0].Value), nil
}
