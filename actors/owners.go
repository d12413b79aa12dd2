package actors

import (
	"context"
	"fmt"

	"github.com/troupe-media/troupe/persistence"
)

// Owners is a cluster's room ownership, as the registry uses it: a room
// actor runs on the node that owns its room, and only there. Nil on a
// single node, which owns every room.
type Owners interface {
	// Claim makes this node the room's owner if no node owns it. It
	// returns nil if this node owns the room (now or already), and a
	// *NotOwnerError naming the owner if another node does.
	Claim(ctx context.Context, roomID string) error
	// Release gives up this node's ownership of a room, so that any node
	// may claim it at once.
	Release(ctx context.Context, roomID string) error
	// Elsewhere returns the other node that owns the room as this node
	// last heard (a watch of the owners), without asking etcd. ok is false
	// when this node heard of no other owner, or cannot tell: the room
	// goes through Claim then. A request it names an owner for is refused
	// with a *NotOwnerError and forwarded there; the hint may be stale by
	// the watch's delay, so a node that receives a forwarded request asks
	// etcd instead (see Forwarded).
	Elsewhere(roomID string) (owner string, ok bool)
}

// Creator is an Owners that creates a room and claims it in one write: a
// new room then costs the cluster's store one transaction, where a claim
// and then the room's write cost two and a read. The registry starts the
// actor of a room that a create names without claiming it first; the
// actor's creation claims it (ClaimCreate), or, if it cannot, claims it
// the usual way and creates it as any room (see createUnclaimed).
type Creator interface {
	Owners
	// PlaceNew returns the node that a room no node owns should be
	// created on, or "" for this node, from what this node knows now,
	// without waiting: the create is forwarded there and created there.
	PlaceNew(roomID string) string
	// ClaimCreate commits w, the creation of room roomID (the room and
	// its events), and makes this node its owner, in one write, if no
	// node owns the room and it is not stored. It returns a
	// *NotOwnerError naming the owner if another node owns it, and
	// another error, having written nothing, if the room is stored or
	// owned here already, or the write failed.
	ClaimCreate(ctx context.Context, roomID string, w persistence.Writes) error
}

// forwardedKey marks a context of Forwarded.
type forwardedKey struct{}

// Forwarded marks ctx as that of a request another node of the cluster
// forwarded here because it heard that this node owns the room, or of a
// takeover this node won. Such a request never trusts this node's own hint
// (Owners.Elsewhere): the two nodes' hints disagree, so the room's owner
// is asked of etcd, by a Claim whose ctx says IsForwarded: the room is
// claimed here if no node owns it, not placed again, and if another node
// owns it, the *NotOwnerError names the node to retry at.
func Forwarded(ctx context.Context) context.Context {
	return context.WithValue(ctx, forwardedKey{}, true)
}

// IsForwarded reports whether ctx was marked by Forwarded.
func IsForwarded(ctx context.Context) bool {
	v, _ := ctx.Value(forwardedKey{}).(bool)
	return v
}

// NotOwnerError reports a request for a room that another node of the
// cluster owns: its actor runs there, not here. errors.Is(err,
// ErrUnavailable) holds, for a caller that does not forward the request.
type NotOwnerError struct {
	RoomID RoomID
	// Owner is the node that owns the room; empty if this node could not
	// claim it for another reason (it holds no lease for now).
	Owner string
}

func (e *NotOwnerError) Error() string {
	if e.Owner == "" {
		return fmt.Sprintf("room %s is owned by no node this node can reach", e.RoomID)
	}
	return fmt.Sprintf("room %s is owned by node %s", e.RoomID, e.Owner)
}

// Is makes a NotOwnerError match ErrUnavailable.
func (e *NotOwnerError) Is(target error) bool { return target == ErrUnavailable }

// refused is the registry's answer to a request for a room it could not
// claim; request turns it back into its error.
type refused struct{ err error }
