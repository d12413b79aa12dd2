package main

import (
	"context"
)

// Owner hints: each node follows the rooms' owner keys (etcdstore.OwnerView),
// so that a request for a room another node owns is forwarded at once,
// where asking etcd first (a claim that fails) cost a consensus round and a
// read per request. The view is only a hint: a room is owned by its claim
// alone, and a node receiving a forwarded request asks etcd (see
// actors.Forwarded), answering with the owner it found when that is yet
// another node, for the forwarder to retry there once.

// followOwners keeps the cluster's view of the room owners until ctx ends.
func (c *cluster) followOwners(ctx context.Context) {
	c.store.FollowOwners(ctx, &c.owners)
}

// Elsewhere returns the other node that owns roomID, as this node last
// heard; ok is false if it heard of none, or of itself (the claim then
// asks etcd, which checks this node's lease).
func (o owners) Elsewhere(roomID string) (owner string, ok bool) {
	owner, ok = o.c.owners.Owner(roomID)
	if !ok || owner == "" || owner == o.c.node.ID {
		return "", false
	}
	return owner, true
}
